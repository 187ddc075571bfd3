/* protocol.h — the wire protocol of `berth serve --stdio`, version 1.
 *
 * This header is the specification.  It says what goes over the byte stream
 * between a Berth client and `berth serve --stdio` on the far side (an SSH
 * channel's stdin/stdout, or a pipe), and gives the encoder, the decoder and
 * frame I/O.  It is not the server: nothing here opens a repository, checks
 * a lock or a path restriction, or decides what a request means beyond the
 * bounds written below.  Depends on common/ only (no libssh2, no
 * repository code) but for wire_io_ssh(), which reads and writes through
 * transport.h's channel calls.
 *
 * ==== Frames ===============================================================
 *
 *   u32 length    of what follows: 5 .. WIRE_FRAME_MAX
 *   u8  type      WIRE_* below; bit 7 set = sent by the server
 *   u32 tag       request id chosen by the client, echoed by every reply
 *   ... body      as the type says, exactly filling length - 5 bytes
 *
 * Integers are little-endian and of fixed width.  A "str" is u32 n + n bytes
 * with no NUL among them (so a receiver may copy it into a C string); a
 * "bytes" is u32 n + n bytes of anything.  Every field has a bound (below);
 * a u64 that is a size or an offset is at most 2^63 - 1 (it becomes an
 * off_t), and GET's offset + length too.
 * The decoder refuses, with -BERTH_EPROTO, a frame that is truncated, has
 * bytes left after its body, has an unknown type, or has any field out of
 * its bounds.  A server that meets such a frame answers ERROR
 * {BERTH_EPROTO} (with the frame's tag when it had one, else 0) and closes
 * the connection; a client just closes it: a peer that breaks the format is
 * not talked to any further.
 * The length is checked before anything is allocated for the frame
 * (wire_read_frame), so a hostile peer costs at most WIRE_FRAME_MAX bytes
 * of memory, and only as fast as it actually sends them.
 *
 * WIRE_FRAME_MAX is 16 MiB + 64 KiB: a whole 16 MiB DATA or PUT_DATA, and a
 * HAVE of 65536 ids (2 MiB), fit with room to spare.
 *
 * ==== Handshake ============================================================
 *
 * The client speaks first, with HELLO (tag 0).  The server answers WELCOME
 * (tag 0) with the highest version both support (wire_choose_version), or
 * ERROR {BERTH_EPROTO, "no common version ..."} and closes.  A peer whose
 * first frame is anything else is refused (ERROR, close); so is a second
 * HELLO.  The server's hello is its own type (WELCOME) rather than a second
 * HELLO, so that every frame decodes without knowing who sent it.
 *
 * ==== Messages (version 1) =================================================
 *
 *  type  name       sent by  body                                      answered by
 *  0x01  HELLO      client   magic[9] "BERTHWIRE", u16 min_version,    WELCOME | ERROR
 *                            u16 max_version (1 <= min <= max),
 *                            str software_version (<= 256)
 *  0x81  WELCOME    server   magic[9], u16 version (chosen),           -
 *                            str software_version (<= 256),
 *                            u32 capabilities (WIRE_CAP_*; other bits 0)
 *  0x10  OPEN       client   str path (1..4096), u8 mode (0 read,      OPENED | ERROR
 *                            1 write, 2 maintenance),
 *                            u32 lock_wait_seconds (<= 86400)
 *  0x90  OPENED     server   str repo_id (1..256),                     -
 *                            bytes config (<= 1 MiB)
 *  0x11  STAT       client   str name                                  SIZE | ERROR
 *  0x91  SIZE       server   u64 size                                  -
 *  0x12  GET        client   str name, u64 offset,                     DATA | ERROR
 *                            u32 length (<= 16 MiB)
 *  0x92  DATA       server   bytes data (<= 16 MiB)                    -
 *  0x13  LIST       client   str prefix (a name, a name and '/', or    NAMES... | ERROR
 *                            empty)
 *  0x93  NAMES      server   u8 last (0 or 1), u32 n (<= 65536),       -
 *                            n x (str name, u64 size)
 *  0x14  PUT_BEGIN  client   str name, u64 size,                       (at PUT_END)
 *                            u8 flags (WIRE_PUT_*; other bits 0)
 *  0x15  PUT_DATA   client   bytes data (<= 16 MiB)                    (at PUT_END)
 *  0x16  PUT_END    client   u8 sha256[32]                             OK | ERROR
 *  0x17  DELETE     client   str name                                  OK | ERROR
 *  0x18  HAVE       client   u32 n (<= 65536), n x u8 id[32]           LACK | ERROR
 *  0x98  LACK       server   u32 n (<= 65536),                         -
 *                            u8 bitmap[ceil(n/8)] (padding bits 0)
 *  0x19  ANNOUNCE   client   str snapshot_id (64 lowercase hex)        OK | ERROR
 *  0x1f  BYE        client   (empty)                                   OK
 *  0x82  ERROR      server   i32 code, str message (<= 4096)           -
 *  0x83  OK         server   (empty)                                   -
 *
 * "name" everywhere is a repository object name: 1..4096 bytes of
 * [A-Za-z0-9._/-], relative (no leading '/'), no trailing '/', no empty
 * component ('//'), no component starting with '.' (so no '.' or '..',
 * and no hidden or temporary file; the rule of snapshot/backend.h).  So
 * every object has exactly one name (an append-only server cannot be
 * fooled by "packs/./x"), and no name leaves the repository.  The decoder checks this; the server still
 * opens names beneath the repository's directory fd without following
 * symlinks.
 *
 * ERROR code is positive: an errno from 1 to 34 (the classic numbers, the
 * same on every Linux architecture) or a BERTH_E* code (10001..10999).  A
 * sender maps other errnos to EIO with wire_error_code(); the message keeps
 * the detail.  The message comes from the peer: escape it before it reaches
 * a terminal or a log.
 *
 * ==== What the requests mean ===============================================
 *
 * Tags: the client picks any u32 for a request and does not reuse it while
 * its reply is outstanding.  The server handles requests one at a time, in
 * the order they arrive, and writes each reply completely before it reads
 * the next frame; tags are a check, not a way to reorder.  A client may
 * pipeline (send before reading earlier replies) but must not block writing
 * while replies wait unread: the server stops reading while its write
 * blocks, and an SSH channel buffers only ~2 MiB each way.  So either read
 * replies on another thread, or pipeline only requests whose replies are
 * small (STAT, DELETE, HAVE, ANNOUNCE: under 1 MiB outstanding in all).
 *
 * OPEN      First request after the handshake (before it, every request
 *           but BYE is answered ERROR EINVAL); one per connection.  path is
 *           the repository's directory on the server, absolute or relative
 *           to the server's working directory; OPEN never creates one.  The
 *           server takes the lock the mode needs, waiting up to
 *           lock_wait_seconds (else ERROR BERTH_ELOCKED), and holds it until
 *           BYE or the end of the connection: the client never writes or
 *           removes lock objects itself.  read allows STAT, GET, LIST, HAVE;
 *           write adds PUT and ANNOUNCE; maintenance adds DELETE.  Errors:
 *           ENOENT, BERTH_EFORMAT (not a repository of a known format),
 *           EACCES (outside --restrict-to-path, after resolving symlinks),
 *           EPERM (maintenance under --append-only).
 * STAT      The object's size, or ERROR ENOENT.
 * GET       Up to length bytes from offset, as pread(2): fewer only when the
 *           object ends first, none at or past its end.  ERROR ENOENT.
 * LIST      Every complete object whose name starts with prefix (bytewise),
 *           in no particular order, in NAMES frames; the last frame (maybe
 *           with n = 0) has last = 1.  Temporary files and anything that is
 *           not a valid name are left out.  A failure part-way ends the
 *           stream with ERROR instead.  The server keeps each frame small
 *           (about 1 MiB; an entry takes 12 + name bytes).
 * PUT       PUT_BEGIN, then PUT_DATA frames (same tag) whose sizes add up to
 *           exactly size, then PUT_END with the SHA-256 of the content.
 *           Nothing answers PUT_BEGIN or PUT_DATA; the one reply comes after
 *           PUT_END.  Between PUT_BEGIN and PUT_END the client sends only
 *           PUT_DATA of that tag; anything else, or more bytes than size, is
 *           a protocol violation.  The receiver checks size and hash before
 *           anything becomes visible (temp file, fsync, rename, fsync dir):
 *           a short stream or another hash is ERROR BERTH_ECORRUPT and
 *           stores nothing.  A PUT the server refuses at PUT_BEGIN (read
 *           mode, append-only, a full disk later on) still has its PUT_DATA
 *           read and dropped, and is answered at PUT_END.  With
 *           WIRE_PUT_CREATE (create-if-absent) an existing name is ERROR
 *           EEXIST whatever its content; without it the object is created
 *           or replaced.  The server may refuse a size it will not store
 *           (EFBIG) - STAT or a smaller object first if that matters.
 * DELETE    Removes the object: OK, or ERROR ENOENT, EPERM.
 * HAVE      Offers chunk ids (SHA-256 of a chunk's plain bytes, or its keyed
 *           id in an encrypted repository).  LACK answers with the same n;
 *           bit i (byte i/8, bit i%8, least significant first) is set when
 *           the server lacks id i and wants it sent.
 * ANNOUNCE  Everything snapshot_id references is durable on the server (its
 *           packs and "snapshots/<id>" were PUT): the server indexes it in
 *           its catalog.  ERROR BERTH_ENOTFOUND or BERTH_ECORRUPT when the
 *           snapshot or something it references is missing.
 * BYE       The server answers OK, releases its lock and ends; so does the
 *           client.  Closing without BYE is the same, minus the OK.
 *
 * --append-only (WIRE_CAP_APPEND_ONLY in WELCOME) refuses, with EPERM:
 * OPEN in maintenance mode, DELETE, and a PUT (with or without
 * WIRE_PUT_CREATE) of a name that exists with other content (the same
 * content is OK: a resumed upload is not a rewrite).  --restrict-to-path
 * (WIRE_CAP_RESTRICTED) refuses OPEN of a path outside its directory with
 * EACCES.
 *
 * Versions: the frame header, HELLO, WELCOME and ERROR are the same in
 * every version (a version 1 peer must be able to refuse a version 9 one
 * politely), so they never gain fields.  A later version may add types,
 * fields to other messages and capability bits; a version 1 peer refuses
 * them all, so they are used only after both ends chose that version in the
 * handshake (a server never sets a capability bit the chosen version does
 * not define).
 */
#ifndef BERTH_TRANSPORT_PROTOCOL_H
#define BERTH_TRANSPORT_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../common/common.h"

#define WIRE_VERSION_MIN 1
#define WIRE_VERSION_MAX 1

#define WIRE_MAGIC "BERTHWIRE"
#define WIRE_MAGIC_LEN 9

#define WIRE_HEADER_SIZE 9                              /* length, type, tag */
#define WIRE_FRAME_MIN 5                                /* bounds of the length field */
#define WIRE_FRAME_MAX (16u * 1024 * 1024 + 64 * 1024)
#define WIRE_DATA_MAX (16u * 1024 * 1024)               /* DATA, PUT_DATA, GET length */
#define WIRE_NAME_MAX 4096                              /* names, LIST prefix, OPEN path */
#define WIRE_MESSAGE_MAX 4096                           /* ERROR message */
#define WIRE_SHORT_MAX 256                              /* software_version, repo_id */
#define WIRE_CONFIG_MAX (1024 * 1024)                   /* OPENED config */
#define WIRE_IDS_MAX 65536                              /* HAVE and LACK n */
#define WIRE_NAMES_MAX 65536                            /* NAMES n */
#define WIRE_LOCK_WAIT_MAX 86400
#define WIRE_OFFSET_MAX ((uint64_t)INT64_MAX)              /* sizes and offsets */
#define WIRE_ID_LEN 32
#define WIRE_SNAPSHOT_ID_LEN 64
#define WIRE_NAME_ENTRY_OVERHEAD 12                     /* a NAMES entry: u32 n + name + u64 */

enum wire_type {
        WIRE_HELLO = 0x01,
        WIRE_OPEN = 0x10,
        WIRE_STAT = 0x11,
        WIRE_GET = 0x12,
        WIRE_LIST = 0x13,
        WIRE_PUT_BEGIN = 0x14,
        WIRE_PUT_DATA = 0x15,
        WIRE_PUT_END = 0x16,
        WIRE_DELETE = 0x17,
        WIRE_HAVE = 0x18,
        WIRE_ANNOUNCE = 0x19,
        WIRE_BYE = 0x1f,

        WIRE_WELCOME = 0x81,
        WIRE_ERROR = 0x82,
        WIRE_OK = 0x83,
        WIRE_OPENED = 0x90,
        WIRE_SIZE = 0x91,
        WIRE_DATA = 0x92,
        WIRE_NAMES = 0x93,
        WIRE_LACK = 0x98,
};

/* True for the types the server sends. */
static inline bool wire_type_from_server(uint8_t type) { return type & 0x80; }

enum {
        WIRE_CAP_APPEND_ONLY = 1u << 0, /* serve --append-only */
        WIRE_CAP_RESTRICTED = 1u << 1,  /* serve --restrict-to-path */
        WIRE_CAP_ALL = WIRE_CAP_APPEND_ONLY | WIRE_CAP_RESTRICTED,
};

enum {
        WIRE_OPEN_READ = 0,
        WIRE_OPEN_WRITE = 1,
        WIRE_OPEN_MAINTENANCE = 2,
};

enum {
        WIRE_PUT_CREATE = 1u << 0,      /* create if absent: an existing name is EEXIST */
        WIRE_PUT_ALL = WIRE_PUT_CREATE,
};

/* A counted string.  Decoded: points into the frame, not NUL-terminated,
 * never contains a NUL.  To encode: any bytes the caller keeps alive
 * until wire_encode/wire_write returns (wire_str() for a C string). */
struct wire_str {
        const char *p;
        uint32_t n;
};

struct wire_name {
        struct wire_str name;
        uint64_t size;
};

/* One message.  type selects the member of the union; tag is the frame's.
 * wire_decode() fills it with pointers into the frame it was given: they
 * stay valid as long as those bytes stay unchanged (for wire_read_frame's
 * buffer: until the next read into it or buf_free).  Nothing is allocated. */
struct wire_msg {
        uint8_t type;
        uint32_t tag;
        union {
                struct {
                        uint16_t min_version, max_version;
                        struct wire_str software;
                } hello;
                struct {
                        uint16_t version;
                        struct wire_str software;
                        uint32_t capabilities;
                } welcome;
                struct {
                        int32_t code;           /* positive: errno 1..34 or BERTH_E* */
                        struct wire_str message;
                } error;
                struct {
                        struct wire_str path;
                        uint8_t mode;
                        uint32_t lock_wait_seconds;
                } open;
                struct {
                        struct wire_str repo_id;
                        const uint8_t *config;
                        uint32_t config_len;
                } opened;
                struct {
                        struct wire_str name;   /* STAT, DELETE */
                } stat, delete;
                struct {
                        uint64_t size;
                } size;
                struct {
                        struct wire_str name;
                        uint64_t offset;
                        uint32_t length;
                } get;
                struct {
                        const uint8_t *p;       /* DATA, PUT_DATA */
                        uint32_t n;
                } data;
                struct {
                        struct wire_str prefix;
                } list;
                struct {
                        uint8_t last;
                        uint32_t n;
                        /* To encode: n entries here, or (entries NULL) the
                         * encoded entries in raw/raw_len, as a decoded NAMES
                         * has them (so one can be passed on as it is).
                         * Decoded: entries is NULL; walk raw with
                         * wire_names_next(). */
                        const struct wire_name *entries;
                        const uint8_t *raw;
                        size_t raw_len;
                } names;
                struct {
                        struct wire_str name;
                        uint64_t size;
                        uint8_t flags;
                } put_begin;
                struct {
                        const uint8_t *sha256;  /* 32 bytes */
                } put_end;
                struct {
                        uint32_t n;
                        const uint8_t *ids;     /* n * 32 bytes */
                } have;
                struct {
                        uint32_t n;
                        const uint8_t *bitmap;  /* (n + 7) / 8 bytes */
                } lack;
                struct {
                        struct wire_str snapshot_id;
                } announce;
        };
};

static inline struct wire_str wire_str(const char *s)
{
        return (struct wire_str){ s, s ? (uint32_t)strnlen(s, WIRE_FRAME_MAX) : 0 };
}

/* "GET", "NAMES", ...; "unknown" for a type version 1 does not have. */
const char *wire_type_name(uint8_t type);

/* Appends m as one frame (length prefix included) to out.  The message is
 * checked against the same bounds the decoder applies, so what encodes
 * decodes.  Returns 0, or -EINVAL (a field out of bounds, unknown type) or
 * -EMSGSIZE (the frame would exceed WIRE_FRAME_MAX) with error_set()'s
 * message and out unchanged. */
int wire_encode(const struct wire_msg *m, struct buf *out);

/* Decodes one whole frame, length prefix included, of exactly n bytes, into
 * *ret (pointers into frame: see struct wire_msg).  Returns 0, or
 * -BERTH_EPROTO with error_set()'s message (which never quotes the peer's
 * bytes) and *ret unspecified. */
int wire_decode(const uint8_t *frame, size_t n, struct wire_msg *ret);

/* The next entry of a decoded NAMES (or an encoded raw list that passed
 * wire_encode): *offset starts at 0.  Returns 1 with *ret filled, 0 after
 * the last.  Cannot fail on a decoded message (the decoder walked it). */
int wire_names_next(const struct wire_msg *m, size_t *offset, struct wire_name *ret);

/* Whether LACK bit i is set (i < n). */
static inline bool wire_lack_bit(const struct wire_msg *m, uint32_t i)
{
        return m->lack.bitmap[i / 8] >> (i % 8) & 1;
}

/* Checks a repository object name (rules above).  0 or -BERTH_EPROTO with a
 * message that does not quote the name. */
int wire_check_name(const char *p, size_t n);

/* The version to speak with a peer offering min..max: the highest one both
 * support.  Returns it (>0), or -BERTH_EPROTO when there is none or min >
 * max or min is 0, with a message giving both ranges. */
int wire_choose_version(unsigned min, unsigned max);

/* An error to send: the positive code for -err or err (errno 1..34 and
 * BERTH_E* as they are, any other errno as EIO). */
int32_t wire_error_code(int err);

/* ---- frame I/O ------------------------------------------------------------ */

/* The byte stream under the frames.  read: reads up to n (> 0) bytes,
 * blocking until at least one arrives; returns the count, 0 at end of
 * stream, or -errno.  write: writes all n bytes; returns 0 or -errno.  Both
 * set error_set()'s message on failure.  fd_in and fd_out are for
 * wire_io_fd()'s callbacks; other ios leave them -1. */
struct wire_io {
        int (*read)(void *ud, void *p, size_t n);
        int (*write)(void *ud, const void *p, size_t n);
        void *ud;
        int fd_in, fd_out;      /* wire_io_fd's */
};

/* An io over two file descriptors (serve --stdio: 0 and 1), retrying
 * EINTR.  *ret points at itself: do not move it after this call. */
void wire_io_fd(struct wire_io *ret, int in, int out);

/* An io over an SSH channel (struct ssh_channel * from transport.h). */
struct ssh_channel;
void wire_io_ssh(struct wire_io *ret, struct ssh_channel *ch);

/* Reads one frame into *frame (replacing what it held; length prefix
 * included, ready for wire_decode).  The length is checked before any
 * allocation, and the buffer grows only as bytes arrive and never past the
 * frame's length.  Blocks.  Returns 1 with a frame, 0 at the end of the
 * stream between frames, -BERTH_EPROTO for a length out of bounds or a
 * stream that ends inside a frame, or the io's -errno; with an error
 * message each time. */
int wire_read_frame(const struct wire_io *io, struct buf *frame);

/* Encodes m and writes it; DATA and PUT_DATA bytes are written from where
 * they are, not copied.  Blocks.  Returns 0, wire_encode's errors, or the
 * io's -errno. */
int wire_write(const struct wire_io *io, const struct wire_msg *m);

#endif
