/* window.c — ranged reads of immutable objects through a cache of windows
 * (see internal.h), shared by the ssh and s3 backends.
 *
 * Restores and checks read a pack's records mostly in order, a few hundred
 * KiB each: one request for a whole window serves many of them.  Windows
 * are aligned (window i of an object is [i * size, (i + 1) * size)), so
 * readers that want nearby records at the same time find the one window
 * being loaded and wait for it instead of each asking for its own, and a
 * read-ahead thread can load the next windows of an object being read
 * forward while the readers use this one.  Objects never change once
 * written, so what is kept stays true.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/common.h"
#include "internal.h"

enum { SLOT_EMPTY, SLOT_LOADING, SLOT_READY };

struct slot {
        char name[WINDOW_NAME_MAX];     /* "" when empty */
        uint64_t index;                 /* window number in the object */
        int state;                      /* SLOT_* */
        unsigned refs;                  /* loader or readers using it: not reused while > 0 */
        uint64_t used;                  /* LRU clock */
        bool ahead;                     /* loaded by read-ahead, not read yet */
        uint64_t objsize;               /* the object's size, 0: not known */
        struct buf data;                /* shorter than the window: the object ends in it */
};

struct wanted {
        char name[WINDOW_NAME_MAX];
        uint64_t index;
};

struct window_cache {
        pthread_mutex_t lock;
        pthread_cond_t changed;         /* a load ended, or a slot was released */
        size_t size;
        unsigned nslots, ahead;
        struct slot *slots;
        uint64_t clock;
        window_fetch_fn fetch;
        void *ud;
        /* read-ahead: a small queue of windows to load, and its threads */
        pthread_cond_t work;
        struct wanted *queue;
        size_t qcap, qhead, qlen;
        pthread_t *threads;
        unsigned nthreads, started;
        bool stop;
        struct window_cache_stats st;
};

struct window_cache *window_cache_new(size_t size, unsigned slots, unsigned ahead, unsigned threads,
                                      window_fetch_fn fetch, void *ud)
{
        struct window_cache *wc = xcalloc(1, sizeof *wc);
        pthread_mutex_init(&wc->lock, NULL);
        pthread_cond_init(&wc->changed, NULL);
        pthread_cond_init(&wc->work, NULL);
        wc->size = size;
        wc->nslots = slots < 1 ? 1 : slots;
        wc->slots = xcalloc(wc->nslots, sizeof *wc->slots);
        wc->ahead = threads ? ahead : 0;
        wc->nthreads = wc->ahead ? threads : 0;
        wc->fetch = fetch;
        wc->ud = ud;
        if (wc->nthreads) {
                wc->qcap = 2 * (size_t)wc->ahead + 2;
                wc->queue = xcalloc(wc->qcap, sizeof *wc->queue);
                wc->threads = xcalloc(wc->nthreads, sizeof *wc->threads);
        }
        return wc;
}

void window_cache_free(struct window_cache *wc)
{
        if (!wc)
                return;
        pthread_mutex_lock(&wc->lock);
        wc->stop = true;
        pthread_cond_broadcast(&wc->work);
        pthread_mutex_unlock(&wc->lock);
        for (unsigned i = 0; i < wc->started; i++)
                pthread_join(wc->threads[i], NULL);
        for (unsigned i = 0; i < wc->nslots; i++)
                buf_free(&wc->slots[i].data);
        free(wc->slots);
        free(wc->queue);
        free(wc->threads);
        pthread_cond_destroy(&wc->work);
        pthread_cond_destroy(&wc->changed);
        pthread_mutex_destroy(&wc->lock);
        free(wc);
}

void window_cache_get_stats(struct window_cache *wc, struct window_cache_stats *ret)
{
        pthread_mutex_lock(&wc->lock);
        *ret = wc->st;
        pthread_mutex_unlock(&wc->lock);
}

/* The slot holding (or loading) window index of name, or NULL.  Locked. */
static struct slot *find_locked(struct window_cache *wc, const char *name, uint64_t index)
{
        for (unsigned i = 0; i < wc->nslots; i++) {
                struct slot *s = &wc->slots[i];
                if (s->state != SLOT_EMPTY && s->index == index && strcmp(s->name, name) == 0)
                        return s;
        }
        return NULL;
}

/* The least recently used slot nobody is using, or NULL.  Locked. */
static struct slot *victim_locked(struct window_cache *wc)
{
        struct slot *v = NULL;
        for (unsigned i = 0; i < wc->nslots; i++) {
                struct slot *s = &wc->slots[i];
                if (s->refs == 0 && (!v || s->state == SLOT_EMPTY || (v->state != SLOT_EMPTY && s->used < v->used)))
                        v = s;
        }
        return v;
}

/* Claims v for loading window index of name (the caller's reference). */
static void claim_locked(struct window_cache *wc, struct slot *v, const char *name, uint64_t index)
{
        if (v->ahead)
                wc->st.ahead_wasted++;
        snprintf(v->name, sizeof v->name, "%s", name);
        v->index = index;
        v->state = SLOT_LOADING;
        v->refs = 1;
        v->ahead = false;
        v->used = ++wc->clock;
        v->objsize = 0;
        buf_reset(&v->data);
}

/* Loads the claimed slot s (its owner, without the lock); 0 or the fetch's
 * error, after which s is empty again. */
static int load(struct window_cache *wc, struct slot *s)
{
        buf_reserve(&s->data, wc->size);
        size_t n = 0;
        uint64_t objsize = 0;
        int k = wc->fetch(wc->ud, s->name, s->index * wc->size, wc->size, s->data.data, &n, &objsize);
        pthread_mutex_lock(&wc->lock);
        wc->st.fetches++;
        if (k < 0 || n > wc->size) {
                s->state = SLOT_EMPTY;
                s->name[0] = 0;
                k = k < 0 ? k : -EIO;
        } else {
                s->data.len = n;
                s->objsize = objsize;
                if (n < wc->size && !objsize)
                        s->objsize = s->index * wc->size + n;
                s->state = SLOT_READY;
        }
        pthread_cond_broadcast(&wc->changed);
        pthread_mutex_unlock(&wc->lock);
        return k;
}

/* Whether window index of name starts at or after the object's end, as
 * far as the windows kept know.  Locked. */
static bool past_end_locked(struct window_cache *wc, const char *name, uint64_t index)
{
        for (unsigned i = 0; i < wc->nslots; i++) {
                const struct slot *s = &wc->slots[i];
                if (s->state == SLOT_READY && s->objsize && strcmp(s->name, name) == 0)
                        return index * wc->size >= s->objsize;
        }
        return false;
}

static void *ahead_main(void *arg)
{
        struct window_cache *wc = arg;
        pthread_mutex_lock(&wc->lock);
        for (;;) {
                while (!wc->stop && wc->qlen == 0)
                        pthread_cond_wait(&wc->work, &wc->lock);
                if (wc->stop)
                        break;
                struct wanted w = wc->queue[wc->qhead];
                wc->qhead = (wc->qhead + 1) % wc->qcap;
                wc->qlen--;
                if (find_locked(wc, w.name, w.index) || past_end_locked(wc, w.name, w.index))
                        continue;
                struct slot *s = victim_locked(wc);
                /* Never evict what a reader may want next for a guess. */
                if (!s || (s->state == SLOT_READY && s->ahead))
                        continue;
                claim_locked(wc, s, w.name, w.index);
                s->ahead = true; /* until a reader takes it, even while loading */
                pthread_mutex_unlock(&wc->lock);
                int k = load(wc, s);
                if (k < 0)
                        error_clear(); /* a reader that wants it will say why */
                pthread_mutex_lock(&wc->lock);
                if (k == 0 && s->data.len > 0)
                        wc->st.ahead++;
                else
                        s->ahead = false; /* failed, or after the end: nothing to count */
                s->refs--;
                pthread_cond_broadcast(&wc->changed);
        }
        pthread_mutex_unlock(&wc->lock);
        return NULL;
}

/* Queues windows after index of name that are neither kept nor queued.  Locked. */
static void ahead_locked(struct window_cache *wc, const char *name, uint64_t index)
{
        for (unsigned d = 1; d <= wc->ahead; d++) {
                uint64_t want = index + d;
                if (past_end_locked(wc, name, want))
                        break;
                if (find_locked(wc, name, want))
                        continue;
                bool queued = false;
                for (size_t i = 0; i < wc->qlen && !queued; i++) {
                        const struct wanted *w = &wc->queue[(wc->qhead + i) % wc->qcap];
                        queued = w->index == want && strcmp(w->name, name) == 0;
                }
                if (queued)
                        continue;
                if (wc->qlen == wc->qcap) {
                        /* Newest first: drop the oldest guess. */
                        wc->qhead = (wc->qhead + 1) % wc->qcap;
                        wc->qlen--;
                }
                struct wanted *w = &wc->queue[(wc->qhead + wc->qlen) % wc->qcap];
                snprintf(w->name, sizeof w->name, "%s", name);
                w->index = want;
                wc->qlen++;
                if (wc->started < wc->nthreads &&
                    pthread_create(&wc->threads[wc->started], NULL, ahead_main, wc) == 0)
                        wc->started++;
                pthread_cond_signal(&wc->work);
        }
}

int window_cache_read(struct window_cache *wc, const char *name, uint64_t offset, size_t len, void *buf)
{
        uint8_t *out = buf;
        if (len == 0)
                return 0;
        if (strlen(name) >= WINDOW_NAME_MAX)
                return -ENAMETOOLONG;
        while (len > 0) {
                uint64_t index = offset / wc->size;
                size_t at = (size_t)(offset - index * wc->size);
                size_t want = MIN(len, wc->size - at);
                int64_t t0 = mono_ns();
                pthread_mutex_lock(&wc->lock);
                struct slot *s;
                bool missed = false;
                for (;;) {
                        s = find_locked(wc, name, index);
                        if (s) {
                                s->refs++;
                                while (s->state == SLOT_LOADING)
                                        pthread_cond_wait(&wc->changed, &wc->lock);
                                if (s->state == SLOT_READY && s->index == index && strcmp(s->name, name) == 0)
                                        break;
                                /* Its load failed: try it ourselves. */
                                s->refs--;
                                continue;
                        }
                        s = victim_locked(wc);
                        if (!s) {
                                pthread_cond_wait(&wc->changed, &wc->lock);
                                continue;
                        }
                        claim_locked(wc, s, name, index);
                        wc->st.misses++;
                        missed = true;
                        pthread_mutex_unlock(&wc->lock);
                        int k = load(wc, s);
                        pthread_mutex_lock(&wc->lock);
                        if (k < 0) {
                                s->refs--;
                                pthread_cond_broadcast(&wc->changed);
                                pthread_mutex_unlock(&wc->lock);
                                return k;
                        }
                        break;
                }
                wc->st.wait_ns += (uint64_t)(mono_ns() - t0);
                if (s->ahead) {
                        s->ahead = false;
                        wc->st.ahead_used++;
                }
                s->used = ++wc->clock;
                wc->st.reads++;
                /* A reader that starts on an object, or reads forward past
                 * the middle of a whole window, mostly reads on: the next
                 * windows are likely wanted soon.  (Not before this one is
                 * here: it may tell where the object ends.) */
                if (wc->ahead && s->data.len == wc->size && (missed || at + want > wc->size / 2))
                        ahead_locked(wc, name, index);
                pthread_mutex_unlock(&wc->lock);

                /* The reference keeps the slot as it is. */
                bool short_read = at + want > s->data.len;
                if (!short_read)
                        memcpy(out, s->data.data + at, want);
                pthread_mutex_lock(&wc->lock);
                s->refs--;
                pthread_cond_broadcast(&wc->changed);
                pthread_mutex_unlock(&wc->lock);
                if (short_read) {
                        error_clear();
                        return -EIO; /* the object ends first */
                }
                out += want, offset += want, len -= want;
        }
        return 0;
}
