/* backend.c — the backend calls every implementation shares.
 *
 * Each backend_*() call checks the object name, then dispatches to the
 * implementation's ops table (backend.h).  This file holds no state and
 * does no I/O: implementations are backend-local.c (and, later, the SSH
 * and S3 ones).  Checking names here, once, means no implementation can be
 * handed "../x", an absolute path or an empty component, whatever the
 * caller read from a catalog or a listing.
 */
#include <errno.h>
#include <string.h>

#include "backend.h"

bool backend_name_valid(const char *name)
{
        if (!name || !*name)
                return false;
        bool start = true;
        for (const char *p = name; *p; p++) {
                char c = *p;
                if (c == '/') {
                        if (start)
                                return false; /* leading '/' or "//" */
                        start = true;
                        continue;
                }
                if (start && c == '.')
                        return false; /* ".", "..", hidden or temporary names */
                start = false;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '.'))
                        return false;
        }
        return !start; /* no trailing '/' */
}

/* A listing prefix: "" (everything) or valid components followed by '/'. */
static bool prefix_valid(const char *prefix)
{
        size_t n = prefix ? strlen(prefix) : 0;
        if (!prefix || n == 0)
                return prefix != NULL;
        if (prefix[n - 1] != '/' || n > 255)
                return false;
        char tmp[256];
        memcpy(tmp, prefix, n - 1);
        tmp[n - 1] = 0;
        return backend_name_valid(tmp);
}

int backend_get(struct backend *b, const char *name, size_t max, struct buf *ret)
{
        if (!backend_name_valid(name))
                return -EINVAL;
        return b->ops->get(b, name, max, ret);
}

int backend_get_range(struct backend *b, const char *name, uint64_t offset, size_t len, void *buf)
{
        if (!backend_name_valid(name))
                return -EINVAL;
        return b->ops->get_range(b, name, offset, len, buf);
}

int backend_stat(struct backend *b, const char *name, uint64_t *ret_size)
{
        if (!backend_name_valid(name))
                return -EINVAL;
        return b->ops->stat(b, name, ret_size);
}

int backend_list(struct backend *b, const char *prefix, backend_list_fn fn, void *ud)
{
        if (!prefix_valid(prefix))
                return error_set(EINVAL, "'%s' is not a valid listing prefix", prefix ? prefix : "");
        return b->ops->list(b, prefix, fn, ud);
}

int backend_put(struct backend *b, const char *name, const void *data, size_t len)
{
        if (!backend_name_valid(name))
                return error_set(EINVAL, "'%s' is not a valid object name", name ? name : "");
        if (!b->writable)
                return error_set(EROFS, "%s is open read-only", b->where);
        return b->ops->put(b, name, data, len);
}

int backend_put_file(struct backend *b, const char *name, const struct backend_spool *f)
{
        if (!backend_name_valid(name))
                return error_set(EINVAL, "'%s' is not a valid object name", name ? name : "");
        if (!b->writable)
                return error_set(EROFS, "%s is open read-only", b->where);
        return b->ops->put_file(b, name, f);
}

int backend_delete(struct backend *b, const char *name)
{
        if (!backend_name_valid(name))
                return error_set(EINVAL, "'%s' is not a valid object name", name ? name : "");
        if (!b->writable)
                return error_set(EROFS, "%s is open read-only", b->where);
        return b->ops->delete(b, name);
}

int backend_replace(struct backend *b, const char *name, const void *old, size_t oldlen, const void *data, size_t len)
{
        if (!backend_name_valid(name))
                return error_set(EINVAL, "'%s' is not a valid object name", name ? name : "");
        if (!b->writable)
                return error_set(EROFS, "%s is open read-only", b->where);
        if (!b->ops->replace)
                return -EOPNOTSUPP;
        return b->ops->replace(b, name, old, oldlen, data, len);
}

int backend_lacks(struct backend *b, const uint8_t (*ids)[32], size_t n, uint8_t *ret_lack)
{
        if (!b->ops->lacks)
                return -EOPNOTSUPP;
        if (n > BACKEND_LACKS_MAX)
                return error_set(EINVAL, "%zu chunk ids at once: at most %d", n, BACKEND_LACKS_MAX);
        return b->ops->lacks(b, ids, n, ret_lack);
}

struct backend *backend_new(const struct backend_ops *ops, void *impl, const char *where, bool writable)
{
        struct backend *b = xcalloc(1, sizeof *b);
        b->ops = ops;
        b->impl = impl;
        b->where = xstrdup(where);
        b->writable = writable;
        return b;
}

void backend_free(struct backend *b)
{
        if (!b)
                return;
        if (b->ops && b->ops->free)
                b->ops->free(b);
        free(b->where);
        free(b);
}
