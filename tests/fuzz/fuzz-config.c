/* fuzz-config.c — a repository's config file (JSON): parse it as opening
 * does, and when it parses, the config written back from it parses to the
 * same settings.  snapshot/repo.c is compiled in for its static
 * config_parse() and config_to_json(). */
#include "../../snapshot/repo.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct buf b = { 0 };
        buf_append(&b, data, size);
        buf_putc(&b, 0); /* as repo_open() does */
        struct repo_config c, d;
        if (config_parse("fuzz", &b, &c) == 0) {
                if (!c.id[0])
                        snprintf(c.id, sizeof c.id, "x"); /* config_to_json() wants one */
                char *text = config_to_json(&c);
                struct buf t = { 0 };
                buf_append(&t, text, strlen(text) + 1);
                if (config_parse("fuzz", &t, &d) != 0 || strcmp(c.id, d.id) != 0 || c.min != d.min ||
                    c.avg != d.avg || c.max != d.max || c.seed != d.seed || c.tree_min != d.tree_min ||
                    c.tree_avg != d.tree_avg || c.tree_max != d.tree_max || c.level != d.level ||
                    c.pack_size != d.pack_size || c.page_chunk != d.page_chunk || c.encrypted != d.encrypted ||
                    (c.encrypted && strcmp(c.cipher, d.cipher) != 0) || c.record_size != d.record_size)
                        abort();
                buf_free(&t);
                free(text);
        }
        error_clear();
        buf_free(&b);
        return 0;
}
