/* wire-client — drives `berth serve --stdio` from the end-to-end tests.
 *
 *   wire-client COMMAND [ARGS...] < SCRIPT
 *
 * Spawns COMMAND with pipes on its stdin and stdout (its stderr is ours),
 * then runs SCRIPT, one request a line, printing one line per reply:
 *
 *   hello [MIN MAX]          WELCOME <version> <capabilities>
 *   open PATH MODE [WAIT]    OPENED <repo id> <config bytes>   (MODE read|write|maintenance)
 *   stat NAME                SIZE <n>
 *   get NAME OFF LEN FILE    DATA <n>       (the bytes go to FILE)
 *   getall NAME FILE         DATA <n>       (1 MiB GETs until a short one)
 *   list PREFIX              <name> <size> lines, then END   ('-' is the empty prefix)
 *   put NAME FILE [create] [badsha] [short] [extra] [frame N]
 *                            OK                (short: one byte less than announced;
 *                                               extra: one byte more)
 *   delete NAME              OK
 *   have ID...               LACK <bits>      (one 0/1 per id, 1 = lacking)
 *   announce ID              OK
 *   bye                      OK
 *   raw HEX                  (writes the bytes, reads nothing)
 *   frame TYPE TAG [HEX]     (writes a frame of that type and body, reads nothing)
 *   read                     the next reply
 *   close                    closes COMMAND's stdin, prints every reply left, then EOF
 *
 * Any reply may instead be "ERROR <code> <message>".  At the end stdin is
 * closed and "exit <status>" printed.  Our own failures exit 255. */
#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../common/common.h"
#include "../../transport/protocol.h"

static struct wire_io io;
static struct buf frame;
static uint32_t next_tag = 1;

static void die(const char *what)
{
        const char *m = error_message();
        fprintf(stderr, "wire-client: %s: %s\n", what, m ? m : strerror(errno));
        exit(255);
}

static void send_msg(const struct wire_msg *m)
{
        /* a server that gave up stops reading: say so, and read its reply */
        if (wire_write(&io, m) < 0)
                fprintf(stderr, "wire-client: write: %s\n", error_message() ? error_message() : "failed");
}

/* Reads and prints one reply; returns its decoded type, or -1 at EOF. */
static int read_reply(struct wire_msg *m, bool print)
{
        int r = wire_read_frame(&io, &frame);
        if (r == 0) {
                printf("EOF\n");
                return -1;
        }
        if (r < 0)
                die("read");
        if (wire_decode(frame.data, frame.len, m) < 0)
                die("decode");
        if (m->type == WIRE_ERROR) {
                printf("ERROR %d %.*s\n", m->error.code, (int)m->error.message.n, m->error.message.p);
                return m->type;
        }
        if (!print)
                return m->type;
        switch (m->type) {
        case WIRE_WELCOME: printf("WELCOME %u %u\n", m->welcome.version, m->welcome.capabilities); break;
        case WIRE_OK: printf("OK\n"); break;
        case WIRE_OPENED:
                printf("OPENED %.*s %u\n", (int)m->opened.repo_id.n, m->opened.repo_id.p, m->opened.config_len);
                break;
        case WIRE_SIZE: printf("SIZE %llu\n", (unsigned long long)m->size.size); break;
        case WIRE_DATA: printf("DATA %u\n", m->data.n); break;
        case WIRE_LACK:
                printf("LACK ");
                for (uint32_t i = 0; i < m->lack.n; i++)
                        putchar(wire_lack_bit(m, i) ? '1' : '0');
                putchar('\n');
                break;
        default: printf("%s\n", wire_type_name(m->type)); break;
        }
        return m->type;
}

static void hex_to_buf(const char *hex, struct buf *b)
{
        for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
                unsigned v;
                if (sscanf(hex + i, "%2x", &v) != 1)
                        die("bad hex");
                buf_putc(b, (uint8_t)v);
        }
}

static bool has(char **w, int n, const char *word)
{
        for (int i = 0; i < n; i++)
                if (strcmp(w[i], word) == 0)
                        return true;
        return false;
}

static void do_put(char **w, int n)
{
        FILE *f = fopen(w[2], "rb");
        if (!f)
                die(w[2]);
        struct buf data = { 0 };
        uint8_t tmp[65536];
        size_t k;
        while ((k = fread(tmp, 1, sizeof tmp, f)) > 0)
                buf_append(&data, tmp, k);
        fclose(f);
        uint8_t sha[32];
        unsigned len;
        EVP_Digest(data.data ? data.data : tmp, data.len, sha, &len, EVP_sha256(), NULL);
        if (has(w, n, "badsha"))
                sha[0] ^= 1;
        size_t chunk = 1 << 20;
        for (int i = 3; i < n - 1; i++)
                if (strcmp(w[i], "frame") == 0)
                        chunk = strtoul(w[i + 1], NULL, 10);
        uint64_t size = data.len;
        size_t send = data.len;
        if (has(w, n, "short"))
                send--;
        if (has(w, n, "extra"))
                size--;
        uint32_t tag = next_tag++;
        struct wire_msg m = { .type = WIRE_PUT_BEGIN, .tag = tag };
        m.put_begin.name = wire_str(w[1]);
        m.put_begin.size = size;
        m.put_begin.flags = has(w, n, "create") ? WIRE_PUT_CREATE : 0;
        send_msg(&m);
        for (size_t off = 0; off < send; off += chunk) {
                struct wire_msg d = { .type = WIRE_PUT_DATA, .tag = tag };
                d.data.p = data.data + off;
                d.data.n = (uint32_t)(send - off < chunk ? send - off : chunk);
                send_msg(&d);
        }
        struct wire_msg e = { .type = WIRE_PUT_END, .tag = tag };
        e.put_end.sha256 = sha;
        send_msg(&e);
        buf_free(&data);
        struct wire_msg r;
        read_reply(&r, true);
}

static int get_into(const char *name, uint64_t off, uint32_t len, FILE *out)
{
        struct wire_msg m = { .type = WIRE_GET, .tag = next_tag++ };
        m.get.name = wire_str(name);
        m.get.offset = off;
        m.get.length = len;
        send_msg(&m);
        struct wire_msg r;
        if (read_reply(&r, false) != WIRE_DATA)
                return -1;
        fwrite(r.data.p, 1, r.data.n, out);
        return (int)r.data.n;
}

int main(int argc, char **argv)
{
        int in[2], out[2];
        if (argc < 2) {
                fprintf(stderr, "usage: wire-client COMMAND [ARGS...] < SCRIPT\n");
                return 2;
        }
        signal(SIGPIPE, SIG_IGN);
        if (pipe(in) < 0 || pipe(out) < 0)
                die("pipe");
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                dup2(in[0], 0);
                dup2(out[1], 1);
                close(in[0]), close(in[1]), close(out[0]), close(out[1]);
                execvp(argv[1], argv + 1);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        wire_io_fd(&io, out[0], in[1]);

        char line[16384];
        while (fgets(line, sizeof line, stdin)) {
                char *w[64];
                int n = 0;
                for (char *t = strtok(line, " \t\n"); t && n < 64; t = strtok(NULL, " \t\n"))
                        w[n++] = t;
                if (n == 0 || w[0][0] == '#')
                        continue;
                struct wire_msg m = { .tag = next_tag++ }, r;
                if (strcmp(w[0], "hello") == 0) {
                        m.type = WIRE_HELLO;
                        m.tag = 0;
                        m.hello.min_version = n > 2 ? (uint16_t)atoi(w[1]) : 1;
                        m.hello.max_version = n > 2 ? (uint16_t)atoi(w[2]) : 1;
                        m.hello.software = wire_str("wire-client");
                        send_msg(&m);
                        read_reply(&r, true);
                } else if (strcmp(w[0], "open") == 0 && n >= 3) {
                        m.type = WIRE_OPEN;
                        m.open.path = wire_str(w[1]);
                        m.open.mode = strcmp(w[2], "write") == 0 ? 1 : strcmp(w[2], "maintenance") == 0 ? 2 : 0;
                        m.open.lock_wait_seconds = n > 3 ? (uint32_t)atoi(w[3]) : 0;
                        send_msg(&m);
                        read_reply(&r, true);
                } else if (strcmp(w[0], "stat") == 0 && n == 2) {
                        m.type = WIRE_STAT;
                        m.stat.name = wire_str(w[1]);
                        send_msg(&m);
                        read_reply(&r, true);
                } else if (strcmp(w[0], "delete") == 0 && n == 2) {
                        m.type = WIRE_DELETE;
                        m.delete.name = wire_str(w[1]);
                        send_msg(&m);
                        read_reply(&r, true);
                } else if (strcmp(w[0], "announce") == 0 && n == 2) {
                        m.type = WIRE_ANNOUNCE;
                        m.announce.snapshot_id = wire_str(w[1]);
                        send_msg(&m);
                        read_reply(&r, true);
                } else if (strcmp(w[0], "bye") == 0) {
                        m.type = WIRE_BYE;
                        send_msg(&m);
                        read_reply(&r, true);
                } else if (strcmp(w[0], "get") == 0 && n == 5) {
                        FILE *f = fopen(w[4], "wb");
                        if (!f)
                                die(w[4]);
                        int k = get_into(w[1], strtoull(w[2], NULL, 10), (uint32_t)strtoul(w[3], NULL, 10), f);
                        fclose(f);
                        if (k >= 0)
                                printf("DATA %d\n", k);
                } else if (strcmp(w[0], "getall") == 0 && n == 3) {
                        FILE *f = fopen(w[2], "wb");
                        if (!f)
                                die(w[2]);
                        uint64_t total = 0;
                        int k;
                        while ((k = get_into(w[1], total, 1 << 20, f)) > 0)
                                total += (uint64_t)k;
                        fclose(f);
                        if (k == 0)
                                printf("DATA %llu\n", (unsigned long long)total);
                } else if (strcmp(w[0], "list") == 0 && n == 2) {
                        m.type = WIRE_LIST;
                        m.list.prefix = wire_str(strcmp(w[1], "-") == 0 ? "" : w[1]);
                        send_msg(&m);
                        for (;;) {
                                if (read_reply(&r, false) != WIRE_NAMES)
                                        break;
                                size_t off = 0;
                                struct wire_name e;
                                while (wire_names_next(&r, &off, &e) == 1)
                                        printf("%.*s %llu\n", (int)e.name.n, e.name.p, (unsigned long long)e.size);
                                if (r.names.last) {
                                        printf("END\n");
                                        break;
                                }
                        }
                } else if (strcmp(w[0], "have") == 0 && n >= 2) {
                        struct buf ids = { 0 };
                        for (int i = 1; i < n; i++)
                                hex_to_buf(w[i], &ids);
                        m.type = WIRE_HAVE;
                        m.have.n = (uint32_t)(n - 1);
                        m.have.ids = ids.data;
                        send_msg(&m);
                        read_reply(&r, true);
                        buf_free(&ids);
                } else if (strcmp(w[0], "put") == 0 && n >= 3) {
                        do_put(w, n);
                } else if (strcmp(w[0], "raw") == 0 && n == 2) {
                        struct buf b = { 0 };
                        hex_to_buf(w[1], &b);
                        if (io.write(io.ud, b.data, b.len) < 0)
                                die("write");
                        buf_free(&b);
                } else if (strcmp(w[0], "frame") == 0 && n >= 3) {
                        struct buf body = { 0 }, b = { 0 };
                        if (n > 3)
                                hex_to_buf(w[3], &body);
                        uint8_t h[9];
                        le32_write(h, (uint32_t)(5 + body.len));
                        h[4] = (uint8_t)strtoul(w[1], NULL, 0);
                        le32_write(h + 5, (uint32_t)strtoul(w[2], NULL, 0));
                        buf_append(&b, h, 9);
                        if (body.len)
                                buf_append(&b, body.data, body.len);
                        if (io.write(io.ud, b.data, b.len) < 0)
                                die("write");
                        buf_free(&body);
                        buf_free(&b);
                } else if (strcmp(w[0], "read") == 0) {
                        read_reply(&r, true);
                } else if (strcmp(w[0], "close") == 0) {
                        close(in[1]);
                        in[1] = -1;
                        while (read_reply(&r, true) >= 0)
                                ;
                } else {
                        fprintf(stderr, "wire-client: bad script line starting '%s'\n", w[0]);
                        return 255;
                }
                fflush(stdout);
        }
        if (in[1] >= 0)
                close(in[1]);
        int status;
        if (waitpid(pid, &status, 0) < 0)
                die("waitpid");
        printf("exit %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        return 0;
}
