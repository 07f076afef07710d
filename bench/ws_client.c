/* One client process of bench/ws.py, in C: holds COUNT WebSockets and counts frames.
 *
 * The same job and the same line protocol as bench/ws_client.py (read its docstring), at a
 * fraction of the CPU per message: one epoll loop, one read() per ready socket, frame
 * headers parsed, payloads skipped unread. A text frame is classed by its payload's first
 * bytes ({"type":"announcement", {"type":"job_completed", or other); a ping gets a masked
 * pong; a close, an error or an end of stream on any socket ends the process (the bench
 * then fails at once instead of waiting for messages that cannot come).
 *
 * Build: cc -O2 -o ws_client bench/ws_client.c     Run: ws_client PORT PATH COUNT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BATCH 100          /* upgrades in flight while connecting */
#define LIFETIME 900       /* seconds: the longest a client process lives */
#define WAIT 60            /* seconds: the longest one upgrade may take */
#define BUF (256 * 1024)
#define REST 192           /* enough for a frame head and a payload prefix or a control frame */

static const char ANNOUNCEMENT[] = "{\"type\":\"announcement\"";
static const char COMPLETED[] = "{\"type\":\"job_completed\"";
#define PREFIX (sizeof(COMPLETED) - 1)

struct sock {
    int fd;
    unsigned rest_len;
    unsigned char rest[REST];
    uint64_t skip;   /* payload bytes of the current frame still to come */
    int kind;        /* the current frame: 1 announcement, 2 job_completed, 0 other */
    int announcements, completions;
};

static int count;
static long long frames;
static int *have[3];
static int have_len[3], have_cap[3];
static unsigned char buf[BUF + REST];

static void die(const char *what) {
    fprintf(stderr, "ws_client: %s: %s\n", what, errno ? strerror(errno) : "failed");
    exit(1);
}

static double monotonic(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);  /* Python's time.monotonic() on Linux */
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One more socket has its k-th message of this kind; say so when all of them have. */
static void got(int kind, int k) {
    if (k > have_cap[kind]) {
        have_cap[kind] = have_cap[kind] ? 2 * have_cap[kind] : 1024;
        have[kind] = realloc(have[kind], have_cap[kind] * sizeof(int));
        if (!have[kind]) die("realloc");
    }
    while (have_len[kind] < k) have[kind][have_len[kind]++] = 0;
    if (++have[kind][k - 1] == count) {
        printf("%c %d %.6f\n", kind == 1 ? 'a' : 'j', k, monotonic());
        fflush(stdout);
    }
}

static void done(struct sock *s) {
    frames++;
    if (s->kind == 1) got(1, ++s->announcements);
    else if (s->kind == 2) got(2, ++s->completions);
}

static void control(struct sock *s, int op, const unsigned char *payload, size_t size) {
    if (op == 0x9) {  /* ping: a client's frames are masked (RFC 6455 5.3) */
        unsigned char pong[2 + 4 + 125];
        uint32_t mask = (uint32_t)random();
        pong[0] = 0x8A;
        pong[1] = 0x80 | (unsigned char)size;
        memcpy(pong + 2, &mask, 4);
        for (size_t j = 0; j < size; j++) pong[6 + j] = payload[j] ^ pong[2 + j % 4];
        if (write(s->fd, pong, 6 + size) != (ssize_t)(6 + size)) die("pong");
    } else if (op == 0x8) {
        int code = size >= 2 ? payload[0] << 8 | payload[1] : 0;
        fprintf(stderr, "ws_client: a socket was closed by the server: %d %.*s\n", code,
                (int)(size >= 2 ? size - 2 : 0), payload + 2);
        exit(1);
    }
}

/* Parse what is in data[0:len] (the socket's carried rest first); keep an incomplete head. */
static void parse(struct sock *s, unsigned char *data, size_t len) {
    size_t i = 0;
    while (i < len) {
        if (s->skip) {
            size_t take = len - i < s->skip ? len - i : s->skip;
            s->skip -= take;
            i += take;
            if (!s->skip) done(s);
            continue;
        }
        if (len - i < 2) break;
        int op = data[i] & 0x0F, short_ = data[i + 1] & 0x7F;
        size_t head = short_ < 126 ? 2 : short_ == 126 ? 4 : 10;
        if (len - i < head) break;
        uint64_t size = short_;
        if (head > 2) {
            size = 0;
            for (size_t j = 2; j < head; j++) size = size << 8 | data[i + j];
        }
        if (op >= 0x8) {  /* control frames carry at most 125 bytes */
            if (size > 125) { errno = 0; die("a control frame over 125 bytes"); }
            if (len - i < head + size) break;
            control(s, op, data + i + head, size);
            i += head + size;
            continue;
        }
        size_t need = head + (size < PREFIX ? size : PREFIX);
        if (len - i < need) break;
        const unsigned char *payload = data + i + head;
        s->kind = size >= sizeof(ANNOUNCEMENT) - 1
                          && !memcmp(payload, ANNOUNCEMENT, sizeof(ANNOUNCEMENT) - 1) ? 1
                  : size >= PREFIX && !memcmp(payload, COMPLETED, PREFIX) ? 2 : 0;
        i += head;
        if (size) s->skip = size;
        else done(s);
    }
    s->rest_len = (unsigned)(len - i);
    memcpy(s->rest, data + i, s->rest_len);
}

static void readable(struct sock *s) {
    memcpy(buf, s->rest, s->rest_len);
    ssize_t n = read(s->fd, buf + s->rest_len, BUF);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) { if (n == 0) errno = 0; die("a socket ended"); }
    parse(s, buf, s->rest_len + (size_t)n);
}

/* Send the upgrade; the 101 and any frames after it are read in upgraded(). */
static int open_socket(int port, const char *path) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die("socket");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
    struct timeval wait = {.tv_sec = WAIT};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    char key[25];
    for (int j = 0; j < 22; j++) key[j] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"[random() % 32];
    memcpy(key + 22, "==", 3);
    char request[2048];
    int size = snprintf(request, sizeof request,
                        "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n", path, port, key);
    if (size >= (int)sizeof request || write(fd, request, size) != size) die("upgrade");
    return fd;
}

static void upgraded(struct sock *s, int fd, int epoll) {
    char answer[4096];
    size_t got_ = 0;
    char *end = NULL;
    while (!end) {
        ssize_t n = read(fd, answer + got_, sizeof answer - 1 - got_);
        if (n <= 0) die("the upgrade's answer");
        got_ += (size_t)n;
        answer[got_] = 0;
        end = strstr(answer, "\r\n\r\n");
        if (!end && got_ == sizeof answer - 1) { errno = 0; die("an upgrade answer too long"); }
    }
    if (strncmp(answer, "HTTP/1.1 101", 12)) {
        errno = 0;
        fprintf(stderr, "ws_client: upgrade refused: %.300s\n", answer);
        exit(1);
    }
    memset(s, 0, sizeof *s);
    s->fd = fd;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t head = (size_t)(end + 4 - answer);
    memcpy(buf, answer + head, got_ - head);  /* a first frame may have come with the 101 */
    parse(s, buf, got_ - head);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) < 0) die("epoll_ctl");
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: ws_client PORT PATH COUNT\n"); return 2; }
    int port = atoi(argv[1]);
    count = atoi(argv[3]);
    alarm(LIFETIME);  /* SIGALRM ends the process whatever its parent does */
    srandom((unsigned)getpid() ^ (unsigned)time(NULL));
    struct sock *socks = calloc((size_t)count, sizeof *socks);
    int epoll = epoll_create1(0);
    if (!socks || epoll < 0) die("setup");
    for (int first = 0; first < count; first += BATCH) {
        int last = first + BATCH < count ? first + BATCH : count, fds[BATCH];
        for (int j = first; j < last; j++) fds[j - first] = open_socket(port, argv[2]);
        for (int j = first; j < last; j++) upgraded(&socks[j], fds[j - first], epoll);
    }
    struct epoll_event in = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, 0, &in) < 0) die("epoll_ctl stdin");
    printf("ready\n");
    fflush(stdout);
    struct epoll_event events[1024];
    for (;;) {
        int n = epoll_wait(epoll, events, 1024, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int j = 0; j < n; j++) {
            if (events[j].data.ptr) {
                readable(events[j].data.ptr);
                continue;
            }
            char line[64];
            ssize_t got_ = read(0, line, sizeof line);
            if (got_ <= 0) return 0;  /* end of stdin: the bench is done with us */
            for (ssize_t c = 0; c < got_; c++)
                if (line[c] == 'f') printf("f %lld\n", frames);
            fflush(stdout);
        }
    }
}
