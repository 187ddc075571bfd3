/* restorer.h — a restore's private state, shared by restore.c (entries
 * through libarchive's disk writer) and stage.c (the target, the staging
 * directory, putting the tree in place).  Nothing else includes it.
 */
#ifndef BERTH_SNAPSHOT_RESTORER_H
#define BERTH_SNAPSHOT_RESTORER_H

#include <archive.h>
#include <archive_entry.h>

#include "internal.h"

#define RESTORE_FLAGS                                                                                            \
        (ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |           \
         ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_FFLAGS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |                        \
         ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS)

/* A linked file that --include left out, remembered in case one of its
 * hard links is included: the first such link gets the contents. */
struct held_link {
        char *path;            /* the left-out file */
        struct buf record;     /* its encoded entry */
        char *restored_as;     /* the included link that received the contents */
        struct held_link *next;
};

/* File flags (immutable, append-only) that would stop the staged tree from
 * being moved into place: set after the move instead. */
struct later_flags {
        char *path;            /* "" for the top directory */
        uint8_t type;
        uint64_t set, clear;
};

/* Where the staged tree goes at the end. */
enum target_kind {
        TARGET_NEW,     /* does not exist: the staging directory is renamed to it */
        TARGET_EMPTY,   /* an empty directory (or mount point): staged inside it, entries moved up */
        TARGET_REPLACE, /* a directory to replace: swapped with the staging directory */
};

struct restorer {
        struct readahead *ra;
        struct archive *disk;
        struct archive_entry *ae;
        const struct restore_options *o;
        struct restore_result *res;
        enum target_kind kind;
        int64_t last_progress;
        uint64_t bytes;
        bool root_seen;
        struct buf root;       /* the top directory's encoded entry */
        struct later_flags *later;
        size_t nlater, later_cap;
        struct held_link *held[256];
        struct entry_store scratch;
};


/* The staging directory and the descriptors around it (stage.c).  Every
 * field is valid or unset (-1, NULL, ""), whatever point stage_open()
 * reached; stage_close() undoes them all. */
struct stage {
        char *parent;          /* the target's parent directory */
        char *target_name;     /* the target's last component */
        int parent_fd;
        int target_fd;         /* TARGET_EMPTY only */
        int staging_fd;
        int cwd;               /* the working directory to return to */
        char staging_name[64]; /* in target_fd (TARGET_EMPTY) or parent_fd; "" when none */
        bool placed;           /* the tree was put in place */
};
#define STAGE_INIT { .parent_fd = -1, .target_fd = -1, .staging_fd = -1, .cwd = -1 }

/* ---- restore.c ---------------------------------------------------------------- */

/* Counts an entry that was not (fully) restored and hands the message to
 * the caller's warning callback. */
void restorer_warn(struct restorer *r, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* libarchive's message for the last failure of a, in buf. */
const char *restorer_disk_error(struct archive *a, char *buf, size_t size);

/* ---- stage.c ------------------------------------------------------------------ */

/* Refuses targets that do not name a directory to create or fill: "", ".",
 * "..", "x/." and a symlink (even written "link/": Berth never writes
 * through one), and a non-empty directory unless `replace`.  *ret_kind
 * says what the target is; an empty one that is no mount point is
 * TARGET_REPLACE with `swap_empty`.  Changes nothing but stale staging
 * directories.  Returns 0 or -errno with error_message(). */
int stage_check_target(const char *target, bool replace, bool swap_empty, enum target_kind *ret_kind);
/* Creates the staging directory on the target's filesystem (next to a new
 * target or one to replace, inside an empty one) and makes it the working
 * directory.  Returns 0 or -errno; either way *st is for stage_close(). */
int stage_open(struct stage *st, const char *target, enum target_kind kind);
/* Whether e is moved (renamed) when the staged tree goes into place; its
 * file flags must then wait (stage_defer_flags()). */
bool stage_moved_at_end(const struct restorer *r, const struct entry *e);
void stage_defer_flags(struct restorer *r, const struct entry *e);
/* Makes the staged tree durable, then puts it in place and applies the
 * deferred flags.  Returns 0 or -errno. */
int stage_put_in_place(struct restorer *r, const struct stage *st, const char *target);
/* Returns to the working directory, removes the staging directory (after a
 * failure, or holding the old tree after a replace) and closes everything.
 * Returns k, or a failure to return to the working directory when k >= 0. */
int stage_close(struct stage *st, enum target_kind kind, int k);

#endif
