/* backend-s3.c — a repository's objects in a bucket of S3-compatible
 * storage, over HTTP(S) with libcurl's SigV4 signing (see s3.h). */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "s3.h"

#define ATTEMPTS 4              /* tries of one request */
#define BACKOFF_MS 200          /* before the second try; doubled each time */
#define CONNECT_TIMEOUT 10      /* seconds */
#define STALL_TIME 60           /* seconds below 1 byte/s: a dead transfer */
#define POOL 16                 /* idle curl handles kept */
/* get_range reads through a cache of WINDOWS windows of WINDOW bytes
 * (window.c): restores and checks read a pack's records mostly in order,
 * so one request serves many, and READ_AHEAD threads load the next AHEAD
 * windows of a pack being read forward, so that the readers find them
 * there instead of waiting for one request after the other. */
#define WINDOW (2u << 20)
#define WINDOWS 12
#define AHEAD 3
#define READ_AHEAD 3

struct s3 {
        pthread_mutex_t lock;   /* the pool */
        CURL *pool[POOL];
        size_t pooled;
        char *base;             /* "http://host:port/bucket/" or "https://bucket.host/" */
        char *keyprefix;        /* "" or "prefix/" */
        char *sigv4;            /* "aws:amz:REGION:s3" */
        char *userpwd;          /* "ACCESS:SECRET" (never printed) */
        char *token_header;     /* "x-amz-security-token: ..." or NULL */
        char *where;
        char *bucket;
        char *endpoint;
        unsigned page;          /* max-keys of a listing page */
        uint64_t requests, retries;
        bool if_match_ok;       /* a PUT with a false If-Match was refused (s3_replace) */
        struct window_cache *windows;
};

static const struct backend_ops s3_ops;

/* ---- s3:// URLs ------------------------------------------------------------- */

bool s3_url_is(const char *url) { return strncmp(url, "s3://", 5) == 0; }

void s3_url_clear(struct s3_url *u)
{
        free(u->bucket);
        free(u->prefix);
        free(u->endpoint);
        free(u->region);
        *u = (struct s3_url){ 0 };
}

static bool bucket_valid(const char *s)
{
        size_t n = strlen(s);
        if (n < 3 || n > 63 || s[0] == '.' || s[0] == '-' || s[n - 1] == '.' || s[n - 1] == '-')
                return false;
        for (const char *p = s; *p; p++)
                if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '.' || *p == '-'))
                        return false;
        return true;
}

/* "http[s]://host[:port]" with nothing after the authority but an optional '/'. */
static bool endpoint_valid(const char *s)
{
        const char *p;
        if (strncmp(s, "https://", 8) == 0)
                p = s + 8;
        else if (strncmp(s, "http://", 7) == 0)
                p = s + 7;
        else
                return false;
        if (!*p || *p == '/' || *p == ':')
                return false;
        for (; *p && *p != '/'; p++)
                if (!(isalnum((unsigned char)*p) || strchr(".-:[]_", *p)))
                        return false;
        return !*p || (p[0] == '/' && !p[1]);
}

static int url_unescape(const char *s, size_t n, char **ret)
{
        char *o = xmalloc(n + 1), *q = o;
        for (size_t i = 0; i < n; i++) {
                if (s[i] == '%') {
                        char h[3] = { 0 };
                        if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
                                goto bad;
                        h[0] = s[i + 1];
                        h[1] = s[i + 2];
                        *q++ = (char)strtoul(h, NULL, 16);
                        i += 2;
                } else
                        *q++ = s[i];
        }
        *q = 0;
        if (strlen(o) != (size_t)(q - o))
                goto bad;
        *ret = o;
        return 0;
bad:
        free(o);
        return -EINVAL;
}

int s3_url_parse(const char *url, struct s3_url *ret)
{
        struct s3_url u = { 0 };
        bool style_set = false;
        s3_url_clear(ret);
        if (!s3_url_is(url))
                return error_set(EINVAL, "%s is not an s3:// URL", url);
        const char *p = url + 5, *q = strchr(p, '?');
        size_t pathlen = q ? (size_t)(q - p) : strlen(p);
        const char *slash = memchr(p, '/', pathlen);
        u.bucket = xstrndup(p, slash ? (size_t)(slash - p) : pathlen);
        if (!bucket_valid(u.bucket)) {
                s3_url_clear(&u);
                return error_set(EINVAL, "%s: bucket name must be 3 to 63 characters of a-z, 0-9, '.' and '-'", url);
        }
        /* The prefix: object-name components (backend.h's rules). */
        const char *ps = slash ? slash + 1 : p + pathlen;
        size_t pn = (size_t)(p + pathlen - ps);
        while (pn && ps[pn - 1] == '/')
                pn--;
        u.prefix = xstrndup(ps, pn);
        if (*u.prefix && !backend_name_valid(u.prefix)) {
                s3_url_clear(&u);
                return error_set(EINVAL, "%s: prefix must be components of A-Z, a-z, 0-9, '_', '.' and '-' "
                                         "separated by '/'", url);
        }
        while (q && *q) {
                q++;
                const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
                const char *eq = memchr(q, '=', (size_t)(end - q));
                if (!eq) {
                        s3_url_clear(&u);
                        return error_set(EINVAL, "%s: expected KEY=VALUE after '?'", url);
                }
                _cleanup_free_ char *key = xstrndup(q, (size_t)(eq - q));
                char *val = NULL;
                if (url_unescape(eq + 1, (size_t)(end - eq - 1), &val) < 0) {
                        s3_url_clear(&u);
                        return error_set(EINVAL, "%s: bad %%-escape in %s", url, key);
                }
                int bad = 0;
                if (strcmp(key, "endpoint") == 0) {
                        bad = !endpoint_valid(val);
                        if (!bad) {
                                size_t l = strlen(val);
                                if (val[l - 1] == '/')
                                        val[l - 1] = 0;
                                free(u.endpoint);
                                u.endpoint = val, val = NULL;
                        }
                } else if (strcmp(key, "region") == 0) {
                        bad = !*val || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(val);
                        if (!bad) {
                                free(u.region);
                                u.region = val, val = NULL;
                        }
                } else if (strcmp(key, "style") == 0) {
                        bad = strcmp(val, "path") != 0 && strcmp(val, "virtual") != 0;
                        u.virtual_host = strcmp(val, "virtual") == 0;
                        style_set = true;
                } else if (strcmp(key, "insecure") == 0) {
                        bad = strcmp(val, "1") != 0 && strcmp(val, "0") != 0;
                        u.insecure = strcmp(val, "1") == 0;
                } else {
                        free(val);
                        s3_url_clear(&u);
                        return error_set(EINVAL, "%s: unknown parameter '%s' (use endpoint, region, style, insecure)",
                                         url, key);
                }
                if (bad) {
                        s3_url_clear(&u);
                        int k = error_set(EINVAL, "%s: invalid %s '%s'", url, key, val);
                        free(val);
                        return k;
                }
                free(val);
                q = amp;
        }
        /* AWS itself: virtual-host style, as AWS prefers, unless told. */
        if (!u.endpoint && !style_set)
                u.virtual_host = true;
        *ret = u;
        return 0;
}

/* ---- ListObjectsV2 replies ------------------------------------------------- */

static xmlNode *child(xmlNode *n, const char *name)
{
        for (xmlNode *c = n ? n->children : NULL; c; c = c->next)
                if (c->type == XML_ELEMENT_NODE && strcmp((const char *)c->name, name) == 0)
                        return c;
        return NULL;
}

/* The text of element `name` under n, malloc'd, or NULL. */
static char *child_text(xmlNode *n, const char *name)
{
        xmlNode *c = child(n, name);
        if (!c)
                return NULL;
        xmlChar *t = xmlNodeGetContent(c);
        char *s = xstrdup(t ? (const char *)t : "");
        xmlFree(t);
        return s;
}

static xmlDoc *xml_read(const char *xml, size_t len)
{
        if (len > INT32_MAX)
                return NULL;
        return xmlReadMemory(xml, (int)len, "reply.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
                                                                       XML_PARSE_NOWARNING);
}

int s3_parse_list(const char *xml, size_t len, int (*fn)(void *ud, const char *key, uint64_t size), void *ud,
                  bool *ret_truncated, char **ret_token)
{
        *ret_truncated = false;
        *ret_token = NULL;
        xmlDoc *doc = xml_read(xml, len);
        xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
        int k = 0;
        if (!root || strcmp((const char *)root->name, "ListBucketResult") != 0) {
                k = error_set(BERTH_EPROTO, "the listing is not a ListBucketResult document");
                goto out;
        }
        for (xmlNode *c = root->children; c && k == 0; c = c->next) {
                if (c->type != XML_ELEMENT_NODE || strcmp((const char *)c->name, "Contents") != 0)
                        continue;
                _cleanup_free_ char *key = child_text(c, "Key");
                _cleanup_free_ char *size = child_text(c, "Size");
                char *end = NULL;
                errno = 0;
                unsigned long long sz = size && *size && isdigit((unsigned char)*size) ? strtoull(size, &end, 10) : 0;
                if (!key || !*key || !size || !end || *end || errno) {
                        k = error_set(BERTH_EPROTO, "the listing has an entry without a key or a size");
                        break;
                }
                k = fn(ud, key, sz);
        }
        if (k == 0) {
                _cleanup_free_ char *t = child_text(root, "IsTruncated");
                *ret_truncated = t && strcmp(t, "true") == 0;
                *ret_token = child_text(root, "NextContinuationToken");
                if (*ret_truncated && (!*ret_token || !**ret_token)) {
                        free(*ret_token);
                        *ret_token = NULL;
                        k = error_set(BERTH_EPROTO, "the listing is truncated but names no continuation token");
                }
        }
out:
        xmlFreeDoc(doc);
        return k;
}

/* The Code and Message of an <Error> reply ("" when there are none). */
static void error_reply(const struct buf *b, char *code, size_t codesz, char *msg, size_t msgsz)
{
        *code = *msg = 0;
        xmlDoc *doc = b->len ? xml_read((const char *)b->data, b->len) : NULL;
        xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
        if (root && strcmp((const char *)root->name, "Error") == 0) {
                _cleanup_free_ char *c = child_text(root, "Code");
                _cleanup_free_ char *m = child_text(root, "Message");
                if (c)
                        snprintf(code, codesz, "%s", c);
                if (m)
                        snprintf(msg, msgsz, "%s", m);
        }
        xmlFreeDoc(doc);
        /* Only printable characters reach a message. */
        for (char *p = code; *p; p++)
                if (!isalnum((unsigned char)*p))
                        *p = '?';
        for (char *p = msg; *p; p++)
                if (!isprint((unsigned char)*p))
                        *p = '?';
}

/* ---- requests --------------------------------------------------------------- */

static struct s3 *S(struct backend *b) { return b->impl; }

static CURL *handle_get(struct s3 *s)
{
        CURL *c = NULL;
        pthread_mutex_lock(&s->lock);
        if (s->pooled)
                c = s->pool[--s->pooled];
        pthread_mutex_unlock(&s->lock);
        return c ? c : curl_easy_init();
}

static void handle_put(struct s3 *s, CURL *c)
{
        pthread_mutex_lock(&s->lock);
        if (s->pooled < POOL)
                s->pool[s->pooled++] = c, c = NULL;
        pthread_mutex_unlock(&s->lock);
        if (c)
                curl_easy_cleanup(c);
}

struct req {
        const char *method;             /* GET, HEAD, PUT, DELETE */
        const char *name;               /* object name, NULL: the bucket itself */
        const char *query;              /* "list-type=2&..." or NULL */
        /* PUT: the body, from memory or a file, and its SHA-256 in hex */
        const void *data;
        size_t len;
        int fd;                         /* -1: data */
        const char *sha256;
        bool if_none_match;
        const char *if_match;           /* an ETag (s3_replace) */
        /* GET: a Range, and where the body goes */
        bool range;
        uint64_t offset;
        size_t range_len;
        void *direct;                   /* range body into this buffer (range_len bytes) */
        struct buf *out;                /* else the body here (errors too) */
        size_t max;                     /* more than this: -EFBIG */
        EVP_MD_CTX *hash;               /* else the body hashed */
        /* results */
        long status;
        uint64_t length;                /* Content-Length of a HEAD */
        char etag[80];                  /* the ETag header, unquoted ("" when none) */
        uint64_t total;                 /* the object's size from a 206's Content-Range, or 0 */
        /* transfer state */
        uint64_t sent, received;
        bool too_big;
        struct buf err;                 /* an error reply's body */
};

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
        struct req *q = ud;
        size_t want = size * n;
        uint64_t left = q->len - q->sent;
        if (want > left)
                want = (size_t)left;
        if (!want)
                return 0;
        if (q->fd >= 0) {
                int k = pread_all(q->fd, p, want, (off_t)q->sent);
                if (k < 0)
                        return CURL_READFUNC_ABORT;
        } else
                memcpy(p, (const uint8_t *)q->data + q->sent, want);
        q->sent += want;
        return want;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
        struct req *q = ud;
        size_t len = size * n;
        uint64_t cap = q->direct ? q->range_len : q->out ? q->max : UINT64_MAX;
        if (q->received + len > cap) {
                q->too_big = true;
                return 0;
        }
        if (q->direct)
                memcpy((uint8_t *)q->direct + q->received, p, len);
        else if (q->out)
                buf_append(q->out, p, len);
        else if (q->hash)
                EVP_DigestUpdate(q->hash, p, len);
        q->received += len;
        return len;
}

/* Error replies go to q->err, bodies of 2xx to the request's sink. */
static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
        struct req *q = ud;
        if (q->status >= 300) {
                if (q->err.len < 64 * 1024)
                        buf_append(&q->err, p, size * n);
                return size * n;
        }
        return on_write(p, size, n, ud);
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
        struct req *q = ud;
        size_t len = size * n;
        if (len > 5 && strncmp(p, "HTTP/", 5) == 0) {
                const char *sp = memchr(p, ' ', len);
                q->status = sp ? strtol(sp + 1, NULL, 10) : 0;
                q->etag[0] = 0;
                q->total = 0;
        } else if (len > 5 && strncasecmp(p, "etag:", 5) == 0) {
                /* ETag: "hex" -> hex */
                size_t i = 5, e = 0;
                while (i < len && (p[i] == ' ' || p[i] == '"'))
                        i++;
                while (i < len && e + 1 < sizeof q->etag && p[i] != '"' && p[i] != '\r' && p[i] != '\n' &&
                       isprint((unsigned char)p[i]))
                        q->etag[e++] = p[i++];
                q->etag[e] = 0;
        } else if (len > 14 && strncasecmp(p, "content-range:", 14) == 0) {
                /* "Content-Range: bytes FIRST-LAST/TOTAL" */
                const char *slash = memchr(p, '/', len);
                if (slash && slash + 1 < p + len && isdigit((unsigned char)slash[1]))
                        q->total = strtoull(slash + 1, NULL, 10);
        }
        return len;
}

static const char EMPTY_SHA256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static bool retryable(CURLcode cc, long status)
{
        if (cc == CURLE_OK)
                return status >= 500 && status != 501;
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
        case CURLE_OPERATION_TIMEDOUT:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
                return true;
        default:
                return false;
        }
}

static int curl_errno(CURLcode cc)
{
        switch (cc) {
        case CURLE_COULDNT_CONNECT:
                return ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
                return EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return ETIMEDOUT;
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CONNECT_ERROR:
                return EPROTO;
        default:
                return EIO;
        }
}

/* Sends q, retrying; returns 0 with q->status set (any HTTP status), or
 * -errno with a message when no answer came. */
static int request(struct s3 *s, struct req *q)
{
        _cleanup_free_ char *url = xasprintf("%s%s%s%s%s", s->base, q->name ? s->keyprefix : "",
                                             q->name ? q->name : "", q->query ? "?" : "", q->query ? q->query : "");
        bool put = strcmp(q->method, "PUT") == 0;
        CURLcode cc = CURLE_OK;
        char errbuf[CURL_ERROR_SIZE];
        unsigned delay = BACKOFF_MS;

        for (unsigned attempt = 1;; attempt++) {
                CURL *c = handle_get(s);
                if (!c)
                        return error_set(ENOMEM, "cannot start an HTTP request");
                struct curl_slist *h = NULL;
                char line[160];
                snprintf(line, sizeof line, "x-amz-content-sha256: %s", put ? q->sha256 : EMPTY_SHA256);
                h = curl_slist_append(h, line);
                if (s->token_header)
                        h = curl_slist_append(h, s->token_header);
                if (q->if_none_match)
                        h = curl_slist_append(h, "If-None-Match: *");
                if (q->if_match) {
                        snprintf(line, sizeof line, "If-Match: %s", q->if_match);
                        h = curl_slist_append(h, line);
                }
                if (q->range) {
                        snprintf(line, sizeof line, "Range: bytes=%llu-%llu", (unsigned long long)q->offset,
                                 (unsigned long long)(q->offset + q->range_len - 1));
                        h = curl_slist_append(h, line);
                }
                curl_easy_reset(c);
                errbuf[0] = 0;
                curl_easy_setopt(c, CURLOPT_URL, url);
                curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
                curl_easy_setopt(c, CURLOPT_AWS_SIGV4, s->sigv4);
                curl_easy_setopt(c, CURLOPT_USERPWD, s->userpwd);
                curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
                curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
                curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT);
                curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
                curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)STALL_TIME);
                curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
                curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
                curl_easy_setopt(c, CURLOPT_HEADERDATA, q);
                curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
                curl_easy_setopt(c, CURLOPT_WRITEDATA, q);
                if (strcmp(q->method, "HEAD") == 0)
                        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
                else if (put) {
                        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
                        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
                        curl_easy_setopt(c, CURLOPT_READDATA, q);
                        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)q->len);
                } else if (strcmp(q->method, "GET") != 0)
                        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
                q->status = 0;
                q->sent = q->received = 0;
                q->too_big = false;
                buf_reset(&q->err);
                if (q->out)
                        buf_reset(q->out);
                if (q->hash)
                        EVP_DigestInit_ex(q->hash, EVP_sha256(), NULL);
                __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
                cc = curl_easy_perform(c);
                long status = 0;
                curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
                if (cc == CURLE_OK && strcmp(q->method, "HEAD") == 0) {
                        curl_off_t cl = -1;
                        curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
                        q->length = cl > 0 ? (uint64_t)cl : 0;
                }
                curl_slist_free_all(h);
                if (cc == CURLE_OK || q->too_big)
                        handle_put(s, c);
                else
                        curl_easy_cleanup(c);
                if (q->too_big && status < 300) {
                        q->status = status;
                        return 0;
                }
                q->status = status;
                if (attempt >= ATTEMPTS || !retryable(cc, status))
                        break;
                __atomic_add_fetch(&s->retries, 1, __ATOMIC_RELAXED);
                log_debug("%s %s: %s; trying again in %u ms", q->method, url,
                          cc ? (errbuf[0] ? errbuf : curl_easy_strerror(cc)) : "server error", delay);
                usleep(delay * 1000);
                delay *= 2;
        }
        if (cc != CURLE_OK) {
                const char *why = errbuf[0] ? errbuf : curl_easy_strerror(cc);
                if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
                    (cc == CURLE_OPERATION_TIMEDOUT && q->status == 0))
                        return error_set(curl_errno(cc), "cannot reach %s: %s", s->endpoint, why);
                return error_set(curl_errno(cc), "%s %s: %s", q->method, s->where, why);
        }
        return 0;
}

/* An error status as -errno with a one-line message (NULL name: the bucket). */
static int status_error(struct s3 *s, const struct req *q)
{
        char code[64], msg[256];
        error_reply(&q->err, code, sizeof code, msg, sizeof msg);
        const char *obj = q->name ? q->name : "the bucket";
        if (strcmp(code, "NoSuchBucket") == 0 || (!q->name && q->status == 404))
                return error_set(ENOENT, "bucket '%s' does not exist at %s", s->bucket, s->endpoint);
        if (q->status == 403 || q->status == 401) {
                if (strcmp(code, "InvalidAccessKeyId") == 0 || strcmp(code, "SignatureDoesNotMatch") == 0)
                        return error_set(EACCES, "%s refused the credentials (%s): check AWS_ACCESS_KEY_ID and "
                                                 "AWS_SECRET_ACCESS_KEY (or BERTH_S3_*)",
                                         s->endpoint, code);
                return error_set(EACCES, "%s denied access to %s in bucket '%s' (%s)", s->endpoint, obj, s->bucket,
                                 *code ? code : "403 Forbidden");
        }
        return error_set(q->status >= 500 ? EIO : EPROTO, "%s %s of %s: HTTP %ld%s%s%s%s", q->method, obj, s->where,
                         q->status, *code ? " " : "", code, *msg ? ": " : "", msg);
}

static bool object_missing(const struct req *q)
{
        if (q->status != 404)
                return false;
        char code[64], msg[16];
        error_reply(&q->err, code, sizeof code, msg, sizeof msg);
        return strcmp(code, "NoSuchBucket") != 0;
}

/* get/get_range/stat set no message on -ENOENT (backend.h). */
/* A whole object of at most max bytes into out; with etag, the ETag of the
 * very bytes answered (the prune lease's compare-and-swap). */
static int get_object(struct s3 *s, const char *name, size_t max, struct buf *out, char etag[80])
{
        struct req q = { .method = "GET", .name = name, .fd = -1, .out = out, .max = max };
        int k = request(s, &q);
        if (k == 0 && q.too_big)
                k = -EFBIG;
        else if (k == 0 && object_missing(&q))
                k = -ENOENT;
        else if (k == 0 && q.status != 200)
                k = status_error(s, &q);
        if (k == 0 && etag)
                memcpy(etag, q.etag, sizeof q.etag);
        buf_free(&q.err);
        return k;
}

static int s3_get(struct backend *b, const char *name, size_t max, struct buf *ret)
{
        struct buf out = { 0 };
        int k = get_object(S(b), name, max, &out, NULL);
        if (k < 0) {
                buf_free(&out);
                return k;
        }
        buf_free(ret);
        *ret = out;
        return 0;
}

/* One ranged GET of len bytes at offset into buf; *ret_n: bytes read
 * (fewer when the object ends first, if allow_short). */
static int range_read(struct s3 *s, const char *name, uint64_t offset, size_t len, void *buf, bool allow_short,
                      size_t *ret_n, uint64_t *ret_size)
{
        struct req q = { .method = "GET", .name = name, .fd = -1, .range = true, .offset = offset,
                         .range_len = len, .direct = buf };
        int k = request(s, &q);
        if (k == 0 && object_missing(&q))
                k = -ENOENT;
        else if (k == 0 && q.status == 416)
                k = allow_short ? 0 : -EIO; /* starts at the end, or after it */
        else if (k == 0 && q.status != 206 && q.status != 200)
                k = status_error(s, &q);
        else if (k == 0 && (q.too_big || (q.status == 200 && offset != 0) || (!allow_short && q.received != len)))
                /* 200: a server that ignored the Range; short: the object ends early */
                k = -EIO;
        buf_free(&q.err);
        *ret_n = (size_t)q.received;
        if (ret_size)
                *ret_size = k == 0 ? q.total : 0;
        return k;
}

/* window_fetch_fn for the windows */
static int window_fetch(void *ud, const char *name, uint64_t offset, size_t len, void *buf, size_t *ret_n,
                        uint64_t *ret_size)
{
        return range_read(ud, name, offset, len, buf, true, ret_n, ret_size);
}

static int s3_get_range(struct backend *b, const char *name, uint64_t offset, size_t len, void *buf)
{
        struct s3 *s = S(b);
        size_t n;
        if (len == 0)
                return 0;
        /* Reads larger than a window (rare: records are about 256 KiB) go direct. */
        if (len > WINDOW || strlen(name) >= WINDOW_NAME_MAX)
                return range_read(s, name, offset, len, buf, false, &n, NULL);
        return window_cache_read(s->windows, name, offset, len, buf);
}

static int s3_stat(struct backend *b, const char *name, uint64_t *ret_size)
{
        struct s3 *s = S(b);
        struct req q = { .method = "HEAD", .name = name, .fd = -1 };
        int k = request(s, &q);
        if (k == 0 && q.status == 404)
                k = -ENOENT;
        else if (k == 0 && q.status != 200)
                k = status_error(s, &q);
        else if (k == 0)
                *ret_size = q.length;
        buf_free(&q.err);
        return k;
}

struct listing {
        struct s3 *s;
        backend_list_fn fn;
        void *ud;
};

static int listed(void *ud, const char *key, uint64_t size)
{
        struct listing *l = ud;
        size_t pl = strlen(l->s->keyprefix);
        if (strncmp(key, l->s->keyprefix, pl) != 0 || !backend_name_valid(key + pl))
                return 0;  /* not ours: another tool's objects are no business of ours */
        return l->fn(l->ud, key + pl, size);
}

static int s3_list(struct backend *b, const char *prefix, backend_list_fn fn, void *ud)
{
        struct s3 *s = S(b);
        _cleanup_free_ char *full = xasprintf("%s%s", s->keyprefix, prefix);
        _cleanup_free_ char *token = NULL;
        struct listing l = { s, fn, ud };
        CURL *esc = curl_easy_init();
        if (!esc)
                return error_set(ENOMEM, "cannot start an HTTP request");
        char *ep = curl_easy_escape(esc, full, 0);
        int k = 0;
        for (;;) {
                char *et = token ? curl_easy_escape(esc, token, 0) : NULL;
                _cleanup_free_ char *query = xasprintf("%s%s&list-type=2&max-keys=%u&prefix=%s",
                                                       et ? "continuation-token=" : "", et ? et : "", s->page, ep);
                curl_free(et);
                struct buf out = { 0 };
                struct req q = { .method = "GET", .query = *query == '&' ? query + 1 : query, .fd = -1,
                                 .out = &out, .max = 64u << 20 };
                k = request(s, &q);
                if (k == 0 && (q.status != 200 || q.too_big))
                        k = q.too_big ? error_set(EFBIG, "listing %s: reply too big", s->where) : status_error(s, &q);
                bool more = false;
                free(token);
                token = NULL;
                if (k == 0) {
                        k = s3_parse_list((const char *)out.data, out.len, listed, &l, &more, &token);
                        if (k < 0 && k != -BERTH_EPROTO)
                                ;  /* fn's own */
                        else if (k < 0)
                                k = error_set(BERTH_EPROTO, "listing %s: %s", s->where, error_message());
                }
                buf_free(&out);
                buf_free(&q.err);
                if (k < 0 || !more)
                        break;
        }
        curl_free(ep);
        curl_easy_cleanup(esc);
        return k;
}

static void sha256_hex(const uint8_t *d, char *hex) { hex_encode(d, 32, hex); }

/* The SHA-256 of the body: from memory, or read from the file. */
static int body_sha256(const struct req *q, char hex[65])
{
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        uint8_t d[32];
        int k = 0;
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        if (q->fd < 0)
                EVP_DigestUpdate(ctx, q->data, q->len);
        else {
                _cleanup_free_ uint8_t *p = xmalloc(1 << 20);
                for (uint64_t off = 0; off < q->len && k == 0;) {
                        size_t n = (size_t)MIN((uint64_t)(1 << 20), q->len - off);
                        k = pread_all(q->fd, p, n, (off_t)off);
                        if (k == 0)
                                EVP_DigestUpdate(ctx, p, n);
                        off += n;
                }
        }
        EVP_DigestFinal_ex(ctx, d, NULL);
        EVP_MD_CTX_free(ctx);
        sha256_hex(d, hex);
        return k;
}

static int put_common(struct backend *b, const char *name, const void *data, int fd, uint64_t len)
{
        struct s3 *s = S(b);
        char sha[65];
        struct req q = { .method = "PUT", .name = name, .data = data, .fd = fd, .len = len, .sha256 = sha,
                         .if_none_match = true };
        int k = body_sha256(&q, sha);
        if (k < 0)
                return error_set(-k, "cannot read what to upload as %s: %s", name, berth_strerror(k));
        k = request(s, &q);
        if (k == 0 && (q.status == 200 || q.status == 201))
                k = 1;
        else if (k == 0 && (q.status == 412 || q.status == 409)) {
                /* Taken: by these very bytes (an earlier try whose answer
                 * was lost, another host's identical pack) or by others. */
                uint64_t size;
                k = s3_stat(b, name, &size);
                if (k == 0 && size != len)
                        k = -EEXIST;
                else if (k == 0) {
                        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                        struct req g = { .method = "GET", .name = name, .fd = -1, .hash = ctx };
                        k = request(s, &g);
                        uint8_t d[32];
                        char hex[65];
                        EVP_DigestFinal_ex(ctx, d, NULL);
                        EVP_MD_CTX_free(ctx);
                        sha256_hex(d, hex);
                        if (k == 0 && g.status != 200)
                                k = status_error(s, &g);
                        else if (k == 0)
                                k = strcmp(hex, sha) == 0 && g.received == len ? 0 : -EEXIST;
                        buf_free(&g.err);
                }
                if (k == -ENOENT)
                        k = error_set(EAGAIN, "%s: %s was there and is gone", s->where, name);
                if (k == -EEXIST)
                        error_set(EEXIST, "%s already exists in %s with other bytes", name, s->where);
        } else if (k == 0)
                k = status_error(s, &q);
        buf_free(&q.err);
        return k;
}

static int s3_put(struct backend *b, const char *name, const void *data, size_t len)
{
        return put_common(b, name, data, -1, len);
}

static int s3_put_file(struct backend *b, const char *name, const struct backend_spool *f)
{
        return put_common(b, name, NULL, f->fd, f->size);
}

static int s3_delete(struct backend *b, const char *name)
{
        struct s3 *s = S(b);
        uint64_t size;
        /* S3 answers 204 for a missing key too: ask first. */
        int k = s3_stat(b, name, &size);
        if (k < 0)
                return k;
        struct req q = { .method = "DELETE", .name = name, .fd = -1 };
        k = request(s, &q);
        if (k == 0 && q.status == 404 && object_missing(&q))
                k = -ENOENT;
        else if (k == 0 && q.status != 204 && q.status != 200)
                k = status_error(s, &q);
        buf_free(&q.err);
        return k;
}

/* ---- conditional replacement (the prune lease) ----------------------------------- */

#define LEASE_MAX (64 * 1024) /* a lease object is a few hundred bytes */

/* PUT under If-Match: the HTTP status in *ret_status (200, 412...). */
static int put_if_match(struct s3 *s, const char *name, const void *data, size_t len, const char *etag,
                        long *ret_status)
{
        char sha[65];
        struct req q = { .method = "PUT", .name = name, .data = data, .fd = -1, .len = len, .sha256 = sha,
                         .if_match = etag };
        int k = body_sha256(&q, sha);
        if (k == 0)
                k = request(s, &q);
        if (k == 0 && q.status != 200 && q.status != 201 && q.status != 404 && q.status != 412)
                k = status_error(s, &q);
        *ret_status = q.status;
        buf_free(&q.err);
        return k;
}

static bool same_bytes(const struct buf *b, const void *data, size_t len)
{
        return b->len == len && (len == 0 || memcmp(b->data, data, len) == 0);
}

/* Compare-and-swap: the ETag comes with the bytes compared, and the PUT
 * is conditional on it (If-Match), so an object another host replaced in
 * between is never overwritten. */
static int s3_replace(struct backend *b, const char *name, const void *old, size_t oldlen, const void *data,
                      size_t len)
{
        struct s3 *s = S(b);
        struct buf cur = { 0 };
        char etag[80], now[80], quoted[84];
        long status;
        int k = get_object(s, name, LEASE_MAX, &cur, etag);
        bool same = k == 0 && same_bytes(&cur, old, oldlen);
        buf_free(&cur);
        if (k == -EFBIG || (k == 0 && !same))
                return -ESTALE;
        if (k < 0)
                return k;
        if (!etag[0])
                return error_set(EOPNOTSUPP, "%s sent no ETag for %s: it cannot be replaced conditionally", s->where,
                                 name);
        if (!__atomic_load_n(&s->if_match_ok, __ATOMIC_RELAXED)) {
                /* Once: a server that ignored If-Match would let a replace
                 * clobber another host's object.  The probe writes the
                 * bytes that are there, should it be ignored. */
                k = put_if_match(s, name, old, oldlen, "berth-no-such-etag", &status);
                if (k < 0)
                        return k;
                if (status == 200 || status == 201)
                        return error_set(EOPNOTSUPP, "%s ignores If-Match: %s cannot be replaced conditionally there",
                                         s->where, name);
                __atomic_store_n(&s->if_match_ok, true, __ATOMIC_RELAXED);
        }
        /* Ceph's gateway compares the bare tag; others may want it quoted. */
        snprintf(quoted, sizeof quoted, "\"%s\"", etag);
        const char *forms[] = { etag, quoted };
        for (size_t i = 0; i < ELEMENTSOF(forms); i++) {
                k = put_if_match(s, name, data, len, forms[i], &status);
                if (k < 0)
                        return k;
                if (status == 200 || status == 201)
                        return 0;
                /* Refused: another's now, or ours already (an earlier try
                 * whose answer was lost), or the tag's form was wrong. */
                k = get_object(s, name, LEASE_MAX, &cur, now);
                bool ours = k == 0 && same_bytes(&cur, data, len);
                bool unchanged = k == 0 && same_bytes(&cur, old, oldlen) && strcmp(now, etag) == 0;
                buf_free(&cur);
                if (k == -EFBIG)
                        return -ESTALE;
                if (k < 0)
                        return k;
                if (ours)
                        return 0;
                if (!unchanged)
                        return -ESTALE;
        }
        return error_set(EOPNOTSUPP, "%s refuses If-Match with the ETag of %s itself: it cannot be replaced "
                                     "conditionally there",
                         s->where, name);
}

static void s3_free(struct backend *b)
{
        struct s3 *s = S(b);
        if (!s)
                return;
        /* First: its read-ahead threads use the pool. */
        if (s->windows) {
                struct window_cache_stats st;
                window_cache_get_stats(s->windows, &st);
                log_debug("%s: %llu ranged reads, %llu windows fetched (%llu missed, %llu read ahead: %llu used, "
                          "%llu dropped unread), %.2f s waiting",
                          s->where, (unsigned long long)st.reads, (unsigned long long)st.fetches,
                          (unsigned long long)st.misses, (unsigned long long)st.ahead,
                          (unsigned long long)st.ahead_used, (unsigned long long)st.ahead_wasted, st.wait_ns / 1e9);
                window_cache_free(s->windows);
        }
        for (size_t i = 0; i < s->pooled; i++)
                curl_easy_cleanup(s->pool[i]);
        pthread_mutex_destroy(&s->lock);
        if (s->userpwd)
                explicit_bzero(s->userpwd, strlen(s->userpwd));
        if (s->token_header)
                explicit_bzero(s->token_header, strlen(s->token_header));
        free(s->userpwd);
        free(s->token_header);
        free(s->base);
        free(s->keyprefix);
        free(s->sigv4);
        free(s->where);
        free(s->bucket);
        free(s->endpoint);
        free(s);
}

static const struct backend_ops s3_ops = {
        .get = s3_get,
        .get_range = s3_get_range,
        .stat = s3_stat,
        .list = s3_list,
        .put = s3_put,
        .put_file = s3_put_file,
        .delete = s3_delete,
        .replace = s3_replace,
        .free = s3_free,
};

bool backend_is_s3(const struct backend *b) { return b && b->ops == &s3_ops; }

void backend_s3_stats(struct backend *b, uint64_t *ret_requests, uint64_t *ret_retries)
{
        *ret_requests = backend_is_s3(b) ? S(b)->requests : 0;
        *ret_retries = backend_is_s3(b) ? S(b)->retries : 0;
}

/* true for "localhost", 127.0.0.0/8 and [::1]: plain http stays on this host. */
static bool loopback_host(const char *endpoint)
{
        const char *h = strstr(endpoint, "://") + 3;
        size_t n = strcspn(h, "/");
        _cleanup_free_ char *host = xstrndup(h, n);
        if (host[0] == '[')
                return strncmp(host, "[::1]", 5) == 0;
        char *colon = strchr(host, ':');
        if (colon)
                *colon = 0;
        return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0;
}

int backend_s3_open(const struct s3_url *u, const struct s3_credentials *c, bool writable, const char *where,
                    struct backend **ret)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;
        pthread_once(&once, (void (*)(void))xmlInitParser);
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
                return error_set(EIO, "cannot initialize libcurl");
        if (!c->access_key || !*c->access_key || !c->secret_key || !*c->secret_key)
                return error_set(EACCES, "%s: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                                         "(or BERTH_S3_ACCESS_KEY_ID/BERTH_S3_SECRET_ACCESS_KEY, or s3_access_key_file "
                                         "and s3_secret_key_file in berth.conf)",
                                 where);
        const char *region = u->region ? u->region : "us-east-1";
        struct s3 *s = xcalloc(1, sizeof *s);
        pthread_mutex_init(&s->lock, NULL);
        s->windows = window_cache_new(WINDOW, WINDOWS, AHEAD, READ_AHEAD, window_fetch, s);
        s->bucket = xstrdup(u->bucket);
        s->where = xstrdup(where);
        s->endpoint = u->endpoint ? xstrdup(u->endpoint)
                      : strcmp(region, "us-east-1") == 0 ? xstrdup("https://s3.amazonaws.com")
                                                         : xasprintf("https://s3.%s.amazonaws.com", region);
        s->keyprefix = *u->prefix ? xasprintf("%s/", u->prefix) : xstrdup("");
        s->sigv4 = xasprintf("aws:amz:%s:s3", region);
        s->userpwd = xasprintf("%s:%s", c->access_key, c->secret_key);
        if (c->session_token && *c->session_token)
                s->token_header = xasprintf("x-amz-security-token: %s", c->session_token);
        const char *e = getenv("BERTH_S3_LIST_PAGE");  /* tests: small pages */
        s->page = e && atoi(e) > 0 ? (unsigned)atoi(e) : 1000;
        if (u->virtual_host) {
                const char *h = strstr(s->endpoint, "://") + 3;
                s->base = xasprintf("%.*s%s.%s/", (int)(h - s->endpoint), s->endpoint, s->bucket, h);
        } else
                s->base = xasprintf("%s/%s/", s->endpoint, s->bucket);
        struct backend *b = backend_new(&s3_ops, s, where, writable);
        if (strncmp(s->endpoint, "http://", 7) == 0 && !loopback_host(s->endpoint) && !u->insecure) {
                backend_free(b);
                return error_set(EINVAL, "%s: plain http to a host that is not this one sends data unprotected: "
                                         "use https, or add &insecure=1 to the URL",
                                 where);
        }
        /* One listing: the bucket is there and the keys are good. */
        _cleanup_free_ char *query = NULL;
        CURL *esc = curl_easy_init();
        char *ep = esc ? curl_easy_escape(esc, s->keyprefix, 0) : NULL;
        query = xasprintf("list-type=2&max-keys=1&prefix=%s", ep ? ep : "");
        curl_free(ep);
        if (esc)
                curl_easy_cleanup(esc);
        struct buf out = { 0 };
        struct req q = { .method = "GET", .query = query, .fd = -1, .out = &out, .max = 1 << 20 };
        int k = request(s, &q);
        if (k == 0 && q.status != 200)
                k = status_error(s, &q);
        buf_free(&out);
        buf_free(&q.err);
        if (k < 0) {
                backend_free(b);
                return k;
        }
        *ret = b;
        return 0;
}
