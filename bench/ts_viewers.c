/*
 * ts_viewers: N concurrent HTTP viewers of one continuous stream, for
 * bench/mpegts_fanout.sh.
 *
 * Opens N TCP connections to HOST:PORT (at RATE new connections per second),
 * sends `GET PATH HTTP/1.1` on each, checks the status line, then reads
 * whatever arrives: a live stream paces itself, and a rate-limited file
 * (nginx `limit_rate`) is paced by the server, so reading as fast as data
 * comes is reading at the stream's rate. One thread, level-triggered epoll;
 * body bytes are read with MSG_TRUNC, so the kernel discards them without
 * copying them to user space and the client stays cheap next to the server.
 * Bytes counted per viewer are the bytes after the response head (chunked
 * transfer-encoding framing included: ~10 bytes per chunk).
 *
 * Viewers bind source addresses 127.0.1.1, 127.0.1.2, ... (PER_ADDR viewers
 * each), so that no single address holds all the sessions.
 *
 * Snapshots: on SIGUSR1 it writes DIR/snap.K (K = 0, 1, ...; written to a
 * temporary name, then renamed):
 *   line 1: "t SECONDS started established ok non_ok closed"
 *   then one line per viewer: "bytes closed" (closed: 0 or 1)
 * Every second it rewrites DIR/status with line 1's fields.
 * SIGTERM or SIGINT ends it.
 *
 * usage: ts_viewers HOST PORT PATH N RATE PER_ADDR DIR
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum state { IDLE, CONNECTING, HEAD, BODY, CLOSED };

struct viewer {
    int fd;
    enum state st;
    int status;     /* HTTP status, once the status line is read */
    int crlf;       /* progress through "\r\n\r\n" at the end of the head */
    int head_len;   /* bytes of the head seen so far (capped) */
    char line[16];  /* the first bytes of the status line */
    uint64_t bytes; /* body bytes read */
};

static volatile sig_atomic_t want_snap, want_stop;
static void on_usr1(int s) { (void)s; want_snap = 1; }
static void on_term(int s) { (void)s; want_stop = 1; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Large enough that one recv drains what a socket holds; with MSG_TRUNC the
 * kernel never writes to it. */
static char sink[1 << 20];

static struct viewer *v;
static int n, started, established, ok, non_ok, closed_n;
static int ep;
static struct sockaddr_in dst;
static const char *path_s, *dir;
static int per_addr;
static char request[512];
static int request_len;

static void close_viewer(struct viewer *x) {
    if (x->st == CLOSED) return;
    epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
    close(x->fd);
    x->fd = -1;
    x->st = CLOSED;
    closed_n++;
}

static void start_viewer(int i) {
    struct viewer *x = &v[i];
    started++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("socket");
        x->st = CLOSED;
        closed_n++;
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl((127u << 24) | (1u << 8) | (uint32_t)(1 + i / per_addr));
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) perror("bind");
    x->fd = fd;
    x->st = CONNECTING;
    if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        perror("connect");
        close(fd);
        x->fd = -1;
        x->st = CLOSED;
        closed_n++;
        return;
    }
    struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
}

/* Head bytes: the status line, then everything up to "\r\n\r\n". Returns the
 * offset of the first body byte in buf, or len if the head goes on. */
static int parse_head(struct viewer *x, const char *buf, int len) {
    for (int k = 0; k < len; k++) {
        char c = buf[k];
        if (x->head_len < (int)sizeof x->line - 1) x->line[x->head_len] = c;
        x->head_len++;
        if (x->head_len == 12) {
            /* "HTTP/1.1 200" */
            x->status = atoi(x->line + 9);
            if (x->status == 200) ok++;
            else non_ok++;
        }
        if ((c == '\r' && (x->crlf == 0 || x->crlf == 2)) || (c == '\n' && (x->crlf == 1 || x->crlf == 3)))
            x->crlf++;
        else
            x->crlf = c == '\r' ? 1 : 0;
        if (x->crlf == 4) {
            x->st = BODY;
            return k + 1;
        }
    }
    return len;
}

static void on_event(uint32_t i, uint32_t events) {
    struct viewer *x = &v[i];
    if (x->st == CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &l);
        if (err || (events & (EPOLLERR | EPOLLHUP))) {
            close_viewer(x);
            return;
        }
        established++;
        /* The request is tiny: one send fits in an empty socket buffer. */
        if (send(x->fd, request, request_len, MSG_NOSIGNAL) != request_len) {
            close_viewer(x);
            return;
        }
        x->st = HEAD;
        struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &e);
        return;
    }
    for (;;) {
        ssize_t r;
        if (x->st == HEAD) {
            char buf[4096];
            r = recv(x->fd, buf, sizeof buf, 0);
            if (r > 0) {
                int body = parse_head(x, buf, (int)r);
                x->bytes += (uint64_t)(r - body);
                continue;
            }
        } else {
            r = recv(x->fd, sink, sizeof sink, MSG_TRUNC | MSG_DONTWAIT);
            if (r > 0) {
                x->bytes += (uint64_t)r;
                if ((size_t)r < sizeof sink) break; /* drained */
                continue;
            }
        }
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) close_viewer(x);
        break;
    }
}

static void write_status(const char *name, double t0, int per_viewer) {
    char tmp[4096], fin[4096];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    snprintf(fin, sizeof fin, "%s/%s", dir, name);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fprintf(f, "t %.3f %d %d %d %d %d\n", now_s() - t0, started, established, ok, non_ok, closed_n);
    if (per_viewer)
        for (int i = 0; i < n; i++)
            fprintf(f, "%llu %d\n", (unsigned long long)v[i].bytes, v[i].st == CLOSED);
    fclose(f);
    rename(tmp, fin);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT PATH N RATE PER_ADDR DIR\n", argv[0]);
        return 2;
    }
    dst.sin_family = AF_INET;
    if (inet_pton(AF_INET, argv[1], &dst.sin_addr) != 1) {
        fprintf(stderr, "bad IPv4 address %s\n", argv[1]);
        return 2;
    }
    dst.sin_port = htons((uint16_t)atoi(argv[2]));
    path_s = argv[3];
    n = atoi(argv[4]);
    double rate = atof(argv[5]);
    per_addr = atoi(argv[6]);
    dir = argv[7];
    if (n <= 0 || rate <= 0 || per_addr <= 0) {
        fprintf(stderr, "N, RATE and PER_ADDR must be positive\n");
        return 2;
    }
    request_len = snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: ts_viewers\r\n\r\n",
                           path_s, argv[1], argv[2]);
    v = calloc((size_t)n, sizeof *v);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!v || ep < 0) {
        perror("setup");
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    double t0 = now_s(), last_status = 0;
    int snaps = 0;
    struct epoll_event evs[512];
    while (!want_stop) {
        double t = now_s() - t0;
        /* Connections due by now at RATE per second. */
        int due = (int)(t * rate) + 1;
        while (started < n && started < due) start_viewer(started);
        int k = epoll_wait(ep, evs, 512, 10);
        for (int j = 0; j < k; j++) on_event(evs[j].data.u32, evs[j].events);
        if (want_snap) {
            want_snap = 0;
            char name[32];
            snprintf(name, sizeof name, "snap.%d", snaps++);
            write_status(name, t0, 1);
        }
        if (t - last_status >= 1.0) {
            last_status = t;
            write_status("status", t0, 0);
        }
    }
    return 0;
}
