/* idset.c — open-addressing sets of chunk ids (linear probing). */
#include <string.h>

#include "internal.h"

static uint64_t id_key(const uint8_t id[HASH_LEN])
{
        /* Ids are SHA-256 output: their first bytes are already uniform. */
        uint64_t k;
        memcpy(&k, id, sizeof k);
        return k;
}

static void idset_grow(struct idset *s)
{
        struct idset n = { 0 };
        n.cap = s->cap ? s->cap * 2 : 1024;
        n.slots = xcalloc(n.cap, HASH_LEN);
        n.used = xcalloc(n.cap, 1);
        for (size_t i = 0; i < s->cap; i++)
                if (s->used[i])
                        idset_add(&n, s->slots[i]);
        free(s->slots);
        free(s->used);
        *s = n;
}

bool idset_contains(const struct idset *s, const uint8_t id[HASH_LEN])
{
        if (s->cap == 0)
                return false;
        size_t mask = s->cap - 1;
        for (size_t i = id_key(id) & mask;; i = (i + 1) & mask) {
                if (!s->used[i])
                        return false;
                if (memcmp(s->slots[i], id, HASH_LEN) == 0)
                        return true;
        }
}

bool idset_add(struct idset *s, const uint8_t id[HASH_LEN])
{
        if ((s->n + 1) * 4 > s->cap * 3)
                idset_grow(s);
        size_t mask = s->cap - 1;
        size_t i = id_key(id) & mask;
        for (; s->used[i]; i = (i + 1) & mask)
                if (memcmp(s->slots[i], id, HASH_LEN) == 0)
                        return false;
        memcpy(s->slots[i], id, HASH_LEN);
        s->used[i] = 1;
        s->n++;
        return true;
}

bool idset_remove(struct idset *s, const uint8_t id[HASH_LEN])
{
        if (s->cap == 0)
                return false;
        size_t mask = s->cap - 1;
        size_t i = id_key(id) & mask;
        for (;; i = (i + 1) & mask) {
                if (!s->used[i])
                        return false;
                if (memcmp(s->slots[i], id, HASH_LEN) == 0)
                        break;
        }
        /* Backward-shift deletion keeps probe chains intact without
         * tombstones. */
        s->used[i] = 0;
        s->n--;
        for (size_t j = (i + 1) & mask; s->used[j]; j = (j + 1) & mask) {
                size_t home = id_key(s->slots[j]) & mask;
                /* Move j back into the hole when its home is not in (i, j]. */
                bool in_range = i <= j ? (home > i && home <= j) : (home > i || home <= j);
                if (!in_range) {
                        memcpy(s->slots[i], s->slots[j], HASH_LEN);
                        s->used[i] = 1;
                        s->used[j] = 0;
                        i = j;
                }
        }
        return true;
}

void idset_free(struct idset *s)
{
        free(s->slots);
        free(s->used);
        *s = (struct idset){ 0 };
}

static uint64_t filter_key(const uint8_t id[HASH_LEN])
{
        uint64_t k = id_key(id);
        return k ? k : 1; /* 0 marks an empty slot */
}

static void idfilter_insert(struct idfilter *f, uint64_t k)
{
        size_t mask = f->cap - 1;
        /* Use the high bits for the slot, so the slot and the stored key are
         * not the same bits at small sizes. */
        size_t i = (size_t)(k >> 20) & mask;
        for (; f->slots[i]; i = (i + 1) & mask)
                if (f->slots[i] == k)
                        return;
        f->slots[i] = k;
        f->n++;
}

void idfilter_add(struct idfilter *f, const uint8_t id[HASH_LEN])
{
        if ((f->n + 1) * 4 > f->cap * 3) {
                struct idfilter n = { 0 };
                n.cap = f->cap ? f->cap * 2 : 4096;
                n.slots = xcalloc(n.cap, sizeof *n.slots);
                for (size_t i = 0; i < f->cap; i++)
                        if (f->slots[i])
                                idfilter_insert(&n, f->slots[i]);
                free(f->slots);
                *f = n;
        }
        idfilter_insert(f, filter_key(id));
}

bool idfilter_maybe(const struct idfilter *f, const uint8_t id[HASH_LEN])
{
        if (f->cap == 0)
                return false;
        uint64_t k = filter_key(id);
        size_t mask = f->cap - 1;
        for (size_t i = (size_t)(k >> 20) & mask; f->slots[i]; i = (i + 1) & mask)
                if (f->slots[i] == k)
                        return true;
        return false;
}

size_t idfilter_bytes(const struct idfilter *f) { return f->cap * sizeof *f->slots; }

void idfilter_free(struct idfilter *f)
{
        free(f->slots);
        *f = (struct idfilter){ 0 };
}
