/* known-hosts.c — reading and extending OpenSSH's known_hosts ourselves.
 *
 * libssh2 (1.10) has a known_hosts reader, but its matching is not what
 * OpenSSH does and not safe to rely on: a plain "host" entry also matches
 * "[host]:2222", a known host that offers a key of another type reads as
 * unknown (so it would be "accepted" as new), reading stops at the first
 * line it cannot parse, and "@revoked" is not understood.  This file does
 * the matching the way ssh(1) does, for the subset Berth needs. */
#include <ctype.h>
#include <fcntl.h>
#include <libgen.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/common.h"
#include "internal.h"
#include "transport.h"

/* Lines longer than this are not keys anyone wrote (an RSA 16384 key is
 * about 2.8 KB): skipped, like any other bad line. */
#define LINE_MAX_LEN (64 * 1024)

struct entry {
        enum { MARK_NONE, MARK_REVOKED, MARK_CA } mark;
        char type[64];
        uint8_t *blob;
        size_t blob_len;
        unsigned line;
};

static void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

/* Standard base64 (with padding) into a new buffer; -EINVAL when s is not
 * valid base64. */
static int b64_decode(const char *s, size_t n, uint8_t **ret, size_t *ret_len)
{
        if (n == 0 || n % 4 != 0 || n > INT32_MAX)
                return -EINVAL;
        uint8_t *out = xmalloc(n / 4 * 3 + 1);
        int len = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
        if (len < 0) {
                free(out);
                return -EINVAL;
        }
        /* EVP_DecodeBlock counts the padding as zero bytes */
        size_t pad = (s[n - 1] == '=') + (s[n - 2] == '=');
        *ret = out;
        *ret_len = (size_t)len - pad;
        return 0;
}

/* Base64 of p[0..n) into a new string, with or without the '=' padding. */
static char *b64_encode(const uint8_t *p, size_t n, bool pad)
{
        char *out = xmalloc((n + 2) / 3 * 4 + 1);
        int len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
        if (!pad)
                while (len > 0 && out[len - 1] == '=')
                        out[--len] = 0;
        return out;
}

void ssh_fingerprint(const void *blob, size_t n, char *out)
{
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;

        if (!EVP_Digest(blob, n, md, &mdlen, EVP_sha256(), NULL))
                mdlen = 0;
        _cleanup_free_ char *b = b64_encode(md, mdlen, false);
        snprintf(out, SSH_FINGERPRINT_MAX, "SHA256:%s", b);
}

int key_blob_type(const uint8_t *key, size_t n, char *out, size_t size)
{
        if (n < 4)
                return -EINVAL;
        uint32_t len = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];
        if (len == 0 || len > n - 4 || len >= size)
                return -EINVAL;
        memcpy(out, key + 4, len);
        out[len] = 0;
        for (uint32_t i = 0; i < len; i++)
                if (!isgraph((unsigned char)out[i]))
                        return -EINVAL;
        return 0;
}

char *known_hosts_name(const char *host, unsigned port)
{
        char *name = (port == 0 || port == 22) ? xstrdup(host) : xasprintf("[%s]:%u", host, port);
        for (char *p = name; *p; p++)
                *p = (char)tolower((unsigned char)*p);
        return name;
}

/* OpenSSH's match_pattern: '*' any run, '?' any one character, nothing
 * else special (so "[host]:port" is literal); case already folded. */
static bool glob_match(const char *s, const char *p, const char *pend)
{
        for (; p < pend; p++, s++) {
                if (*p == '*') {
                        for (;;) {
                                if (glob_match(s, p + 1, pend))
                                        return true;
                                if (!*s)
                                        return false;
                                s++;
                        }
                }
                if (!*s)
                        return false;
                if (*p != '?' && tolower((unsigned char)*p) != *s)
                        return false;
        }
        return !*s;
}

/* "|1|salt|hash": HMAC-SHA1 of name keyed with salt. */
static bool hashed_match(const char *name, const char *pat, size_t n)
{
        const char *salt = pat + 3;
        const char *bar = memchr(salt, '|', n - 3);
        _cleanup_free_ uint8_t *s = NULL, *h = NULL;
        size_t slen, hlen;
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;

        if (!bar || b64_decode(salt, (size_t)(bar - salt), &s, &slen) < 0 ||
            b64_decode(bar + 1, (size_t)(pat + n - bar - 1), &h, &hlen) < 0)
                return false;
        if (slen != 20 || hlen != 20) /* SHA-1 sized, as ssh-keygen -H writes */
                return false;
        if (!HMAC(EVP_sha1(), s, (int)slen, (const unsigned char *)name, strlen(name), md, &mdlen))
                return false;
        return mdlen == hlen && memcmp(md, h, hlen) == 0;
}

/* 1 when the host field matches name, 0 when not, -EINVAL when the field is
 * malformed (a hashed entry that does not parse is simply no match).  As in
 * OpenSSH, one matching negated pattern ("!pat") makes the whole field not
 * match. */
static int hosts_match(const char *field, size_t n, const char *name)
{
        bool hit = false;

        if (n > 3 && memcmp(field, "|1|", 3) == 0)
                return hashed_match(name, field, n);
        const char *end = field + n;
        for (const char *p = field; p < end;) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                const char *pend = comma ? comma : end;
                bool neg = *p == '!';
                const char *q = p + neg;
                if (q < pend && glob_match(name, q, pend)) {
                        if (neg)
                                return 0;
                        hit = true;
                }
                p = comma ? comma + 1 : end;
        }
        return hit;
}

/* The next whitespace-separated field of *p, or NULL. */
static char *field(char **p)
{
        char *s = *p;
        while (*s == ' ' || *s == '\t')
                s++;
        if (!*s)
                return NULL;
        char *e = s;
        while (*e && *e != ' ' && *e != '\t')
                e++;
        if (*e)
                *e++ = 0;
        *p = e;
        return s;
}

/* Parses one line; 1 and *e when it is an entry for name, 0 when it is for
 * another host (or a comment or blank), -EINVAL when it is malformed. */
static int parse_line(char *line, unsigned lineno, const char *name, struct entry *e)
{
        char *p = line, *hosts, *type, *b64;
        int r;

        line[strcspn(line, "\r\n")] = 0;
        hosts = field(&p);
        if (!hosts || hosts[0] == '#')
                return 0;
        *e = (struct entry){ .line = lineno };
        if (hosts[0] == '@') {
                if (strcmp(hosts, "@revoked") == 0)
                        e->mark = MARK_REVOKED;
                else if (strcmp(hosts, "@cert-authority") == 0)
                        e->mark = MARK_CA;
                else
                        return -EINVAL;
                hosts = field(&p);
                if (!hosts)
                        return -EINVAL;
        }
        type = field(&p);
        b64 = field(&p);
        if (!type || !b64)
                return -EINVAL;
        r = hosts_match(hosts, strlen(hosts), name);
        if (r <= 0)
                return r;
        if (e->mark == MARK_CA)
                return 0;
        if (strlen(type) >= sizeof e->type)
                return -EINVAL;
        strcpy(e->type, type);
        r = b64_decode(b64, strlen(b64), &e->blob, &e->blob_len);
        if (r < 0)
                return r;
        char btype[64];
        if (key_blob_type(e->blob, e->blob_len, btype, sizeof btype) < 0 || strcmp(btype, type) != 0) {
                free(TAKE_PTR(e->blob));
                return -EINVAL;
        }
        return 1;
}

/* Every entry of path for host:port, in file order, into a new array
 * (*ret_n entries; the blobs are owned by it, see entries_free).  A file
 * that does not exist has none. */
static int read_entries(const char *path, const char *host, unsigned port, struct entry **ret, size_t *ret_n)
{
        _cleanup_(fclosep) FILE *f = fopen(path, "re");
        _cleanup_free_ char *name = known_hosts_name(host, port);
        _cleanup_free_ char *line = NULL;
        size_t cap = 0, n = 0, acap = 0;
        struct entry *v = NULL;
        unsigned lineno = 0;
        ssize_t len;

        if (!f) {
                if (errno == ENOENT) {
                        *ret = NULL;
                        *ret_n = 0;
                        return 0;
                }
                return error_set(errno, "cannot read '%s': %m", path);
        }
        while ((len = getline(&line, &cap, f)) >= 0) {
                struct entry e;
                lineno++;
                if (len > LINE_MAX_LEN || memchr(line, 0, (size_t)len)) {
                        log_debug("%s:%u: line too long or with a NUL byte, skipped", path, lineno);
                        continue;
                }
                int r = parse_line(line, lineno, name, &e);
                if (r < 0)
                        log_debug("%s:%u: cannot parse the line, skipped", path, lineno);
                if (r <= 0)
                        continue;
                if (n == acap) {
                        acap = acap ? 2 * acap : 4;
                        v = xrealloc(v, acap * sizeof *v);
                }
                v[n++] = e;
        }
        if (ferror(f)) {
                int err = errno;
                for (size_t i = 0; i < n; i++)
                        free(v[i].blob);
                free(v);
                return error_set(err, "cannot read '%s': %s", path, strerror(err));
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static void entries_free(struct entry *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i].blob);
        free(v);
}

/* The libssh2 host-key methods that verify a key of this known_hosts type:
 * an "ssh-rsa" key signs with SHA-2 too. */
static const char *type_methods(const char *type)
{
        static const char *const same[] = {
                "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-dss",
        };
        if (strcmp(type, "ssh-rsa") == 0)
                return "rsa-sha2-512,rsa-sha2-256,ssh-rsa";
        for (size_t i = 0; i < ELEMENTSOF(same); i++)
                if (strcmp(type, same[i]) == 0)
                        return same[i];
        return NULL;
}

int known_hosts_methods(const char *path, const char *host, unsigned port, char **ret)
{
        struct entry *v;
        size_t n;
        struct buf b = {};
        int r;

        r = read_entries(path, host, port, &v, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const char *m = type_methods(v[i].type);
                bool seen = false;
                if (v[i].mark != MARK_NONE || !m)
                        continue;
                for (size_t j = 0; j < i; j++)
                        if (v[j].mark == MARK_NONE && strcmp(v[j].type, v[i].type) == 0)
                                seen = true;
                if (seen)
                        continue;
                if (b.len)
                        buf_putc(&b, ',');
                buf_append(&b, m, strlen(m));
        }
        entries_free(v, n);
        if (b.len) {
                buf_putc(&b, 0);
                *ret = (char *)b.data;
        } else
                *ret = NULL;
        return 0;
}

int known_hosts_check(const char *path, const char *host, unsigned port, const uint8_t *key, size_t n,
                      enum known_host_verdict *ret_verdict, unsigned *ret_line)
{
        struct entry *v;
        size_t nv;
        char type[64] = "";
        enum known_host_verdict verdict = KNOWN_HOST_UNKNOWN;
        unsigned line = 0, same_type_line = 0;
        int r;

        (void)key_blob_type(key, n, type, sizeof type);
        r = read_entries(path, host, port, &v, &nv);
        if (r < 0)
                return r;
        /* A revoked key is refused whatever else the file says; then one
         * entry with this very key is enough; then any entry at all makes
         * this a changed key, never an unknown host. */
        for (size_t i = 0; i < nv; i++)
                if (v[i].mark == MARK_REVOKED && v[i].blob_len == n && memcmp(v[i].blob, key, n) == 0) {
                        verdict = KNOWN_HOST_REVOKED;
                        line = v[i].line;
                        goto done;
                }
        for (size_t i = 0; i < nv; i++) {
                if (v[i].mark != MARK_NONE)
                        continue;
                if (v[i].blob_len == n && memcmp(v[i].blob, key, n) == 0) {
                        verdict = KNOWN_HOST_MATCH;
                        line = v[i].line;
                        goto done;
                }
                if (verdict == KNOWN_HOST_UNKNOWN) {
                        verdict = KNOWN_HOST_CHANGED;
                        line = v[i].line;
                }
                if (!same_type_line && strcmp(v[i].type, type) == 0)
                        same_type_line = v[i].line;
        }
        if (same_type_line)
                line = same_type_line;
done:
        entries_free(v, nv);
        *ret_verdict = verdict;
        *ret_line = line;
        return 0;
}

int known_hosts_add(const char *path, const char *host, unsigned port, const uint8_t *key, size_t n)
{
        _cleanup_free_ char *name = known_hosts_name(host, port);
        _cleanup_free_ char *b64 = b64_encode(key, n, true);
        _cleanup_free_ char *dir = xstrdup(path);
        _cleanup_free_ char *line = NULL;
        _cleanup_close_ int fd = -1;
        char type[64];
        struct stat st;
        bool created = false;
        int r;

        if (key_blob_type(key, n, type, sizeof type) < 0)
                return error_set(EINVAL, "the host key of '%s' is malformed", name);
        char *d = dirname(dir);
        if (stat(d, &st) < 0) {
                r = mkdir_p(d, 0700);
                if (r < 0)
                        return error_set(r, "cannot create '%s': %s", d, strerror(-r));
        }
        fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 && errno == ENOENT) {
                fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
                created = fd >= 0;
        }
        if (fd < 0)
                return error_set(errno, "cannot open '%s' to record the host key: %m", path);
        if (fstat(fd, &st) < 0)
                return error_set(errno, "cannot stat '%s': %m", path);
        if (!S_ISREG(st.st_mode))
                return error_set(EINVAL, "'%s' is not a regular file", path);
        bool need_nl = false;
        if (st.st_size > 0) {
                char last;
                r = pread_all(fd, &last, 1, st.st_size - 1);
                if (r < 0)
                        return error_set(r, "cannot read '%s': %s", path, strerror(-r));
                need_nl = last != '\n';
        }
        line = xasprintf("%s%s %s %s\n", need_nl ? "\n" : "", name, type, b64);
        r = write_all(fd, line, strlen(line));
        if (r < 0)
                return error_set(r, "cannot write to '%s': %s", path, strerror(-r));
        if (fsync(fd) < 0)
                return error_set(errno, "cannot fsync '%s': %m", path);
        if (created) {
                _cleanup_close_ int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                r = dfd < 0 ? -errno : fsync_dirfd(dfd);
                if (r < 0)
                        return error_set(r, "cannot fsync the directory of '%s': %s", path, strerror(-r));
        }
        return 0;
}
