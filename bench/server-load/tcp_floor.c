/*
 * The floor of the ramp on this machine: what the kernel's loopback TCP
 * alone costs for the ramp's exchanges, with nothing else done. A server
 * process and a client process, each one epoll loop like the presence
 * server and the generator; the client opens N connections, at most W in
 * flight, and on each makes the ramp's request/response exchanges with
 * messages of the ramp's sizes (the upgrade and its 101, the connect and
 * its reply, the two subscribes and their replies), then keeps it open.
 * No parsing, no hashing, no presence: the connections a second it
 * reaches are an upper bound for any server and generator doing that
 * work here, so the ramp is reported against it.
 *
 * With -g G, the server also sends the ramp's join pushes: when a
 * connection's last exchange is answered, a push of -p bytes goes to each
 * connection of its group (G in accept order) answered before it, as the
 * presence server tells a group's members who joined (4.5 pushes a
 * connection for G = 10), and the client reads them.
 *
 *   tcp-floor [-n N] [-w W] [-x 2] [-g G [-p BYTES]]
 *                                      prints one line of key=value
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The ramp's messages, in bytes: client requests and server replies,
 * as the generator and the presence server write them (WebSocket framing
 * included): the upgrade, the connect, the two subscribes in one frame.
 * With -x 2, the connect and the subscribes share a frame, as
 * centrifuge-js sends them when the socket opens. */
static size_t request_size[] = {190, 230, 150};
static size_t reply_size[] = {130, 120, 70};
static size_t exchanges = 3;
static size_t group_size = 0; /* 0: no pushes */
static size_t push_size = 110; /* a join push frame: channel, user, client id */

static char filler[4096];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

/* Read what is there; true if anything came. A short read drains the
 * socket (edge-triggered: new bytes make a new edge). */
static bool drain(int fd)
{
    char buf[4096];
    bool got = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            got = true;
            if ((size_t)n < sizeof buf) {
                return true;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        return got;
    }
}

static void send_all(int fd, size_t len)
{
    if (write(fd, filler, len) != (ssize_t)len) {
        die("write"); /* small messages into an empty socket buffer */
    }
}

/* A join push to each member of the connection's group that was
 * answered in full before it. */
static void push_to_group(int fd, uint32_t nth, const int *by_order,
                          const uint8_t *answered)
{
    uint32_t first = nth - nth % (uint32_t)group_size;
    for (uint32_t i = first; i < first + group_size && i < 65536; i++) {
        int other = by_order[i];
        if (other != fd && other > 0 && answered[other] == exchanges) {
            send_all(other, push_size);
        }
    }
}

/* The server: accept, answer each request with the next reply, hold. */
static void serve(int listener, int ready_pipe)
{
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = UINT64_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev);
    uint8_t *answered = calloc(65536, 1); /* by descriptor */
    /* The groups: descriptors by accept order, and each one's order. */
    int *by_order = calloc(65536, sizeof *by_order);
    uint32_t *order = calloc(65536, sizeof *order);
    uint32_t accepted = 0;
    if (answered == NULL || by_order == NULL || order == NULL) {
        die("calloc");
    }
    if (write(ready_pipe, "r", 1) != 1) {
        die("pipe");
    }
    struct epoll_event events[512];
    for (;;) {
        int n = epoll_wait(ep, events, 512, -1);
        for (int i = 0; i < n; i++) {
            if (events[i].data.u64 == UINT64_MAX) {
                for (;;) {
                    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        break;
                    }
                    if (fd >= 65536) {
                        fprintf(stderr, "tcp-floor: descriptor %d past the table\n", fd);
                        exit(2);
                    }
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    answered[fd] = 0;
                    if (accepted < 65536) {
                        order[fd] = accepted;
                        by_order[accepted++] = fd;
                    }
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            int fd = events[i].data.fd;
            if (drain(fd) && answered[fd] < exchanges) {
                send_all(fd, reply_size[answered[fd]++]);
                if (answered[fd] == exchanges && group_size > 0) {
                    push_to_group(fd, order[fd], by_order, answered);
                }
            }
        }
    }
}

typedef struct client_conn {
    int fd;
    uint8_t sent;
} client_conn;

int main(int argc, char **argv)
{
    int total = 19000;
    int window = 2000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0) {
            total = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "-w") == 0) {
            window = atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "-g") == 0) {
            group_size = (size_t)atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "-p") == 0) {
            push_size = (size_t)atoi(argv[i + 1]);
        } else if (strcmp(argv[i], "-x") == 0 && strcmp(argv[i + 1], "2") == 0) {
            exchanges = 2;
            request_size[1] += request_size[2];
            reply_size[1] += reply_size[2];
        }
    }
    if (total <= 0 || window <= 0 || total > 60000 || group_size > 1000 ||
        push_size == 0 || push_size > sizeof filler) {
        fprintf(stderr, "usage: tcp-floor [-n N (1..60000)] [-w W] [-x 2] "
                        "[-g G (0..1000) [-p BYTES (1..4096)]]\n");
        return 2;
    }
    memset(filler, 'x', sizeof filler);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof addr;
    if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        listen(listener, 4096) != 0 ||
        getsockname(listener, (struct sockaddr *)&addr, &alen) != 0) {
        die("listen");
    }
    int pipefd[2];
    if (pipe(pipefd) != 0) {
        die("pipe");
    }
    pid_t server = fork();
    if (server < 0) {
        die("fork");
    }
    if (server == 0) {
        close(pipefd[0]);
        serve(listener, pipefd[1]);
        _exit(0);
    }
    close(listener);
    char c;
    if (read(pipefd[0], &c, 1) != 1) {
        die("server start");
    }

    client_conn *conns = calloc((size_t)total, sizeof *conns);
    int ep = epoll_create1(0);
    int started = 0, done = 0, in_flight = 0;
    struct epoll_event events[512];
    double t0 = now_s();
    double cpu0 = cpu_s(RUSAGE_SELF);
    while (done < total) {
        while (started < total && in_flight < window) {
            client_conn *k = &conns[started];
            k->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (k->fd < 0) {
                die("socket");
            }
            int one = 1;
            setsockopt(k->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            /* As the generator: 16 source addresses, the port picked at
             * connect(), so that no port search grows with N. */
            setsockopt(k->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
            struct sockaddr_in src = {.sin_family = AF_INET,
                                      .sin_addr.s_addr = htonl(0x7F000001u + (uint32_t)(started % 16))};
            if (bind(k->fd, (struct sockaddr *)&src, sizeof src) != 0) {
                die("bind");
            }
            if (connect(k->fd, (struct sockaddr *)&addr, sizeof addr) != 0 &&
                errno != EINPROGRESS) {
                die("connect");
            }
            struct epoll_event cev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                      .data.u32 = (uint32_t)started};
            epoll_ctl(ep, EPOLL_CTL_ADD, k->fd, &cev);
            started++;
            in_flight++;
        }
        int n = epoll_wait(ep, events, 512, 1000);
        for (int i = 0; i < n; i++) {
            client_conn *k = &conns[events[i].data.u32];
            if (events[i].events & (EPOLLERR | EPOLLHUP)) {
                fprintf(stderr, "tcp-floor: a connection failed\n");
                return 1;
            }
            if (k->sent == 0 && (events[i].events & EPOLLOUT)) {
                send_all(k->fd, request_size[k->sent++]); /* connected */
                continue;
            }
            if ((events[i].events & EPOLLIN) && k->sent > 0 && drain(k->fd)) {
                if (k->sent < exchanges) {
                    send_all(k->fd, request_size[k->sent++]);
                } else if (k->sent == exchanges) {
                    k->sent++;
                    done++;
                    in_flight--;
                }
            }
        }
    }
    double wall = now_s() - t0;
    double client_cpu = cpu_s(RUSAGE_SELF) - cpu0;
    kill(server, SIGTERM);
    waitpid(server, NULL, 0);
    double server_cpu = cpu_s(RUSAGE_CHILDREN);
    printf("connections=%d seconds=%.3f per_second=%.0f client_cpu_s=%.3f "
           "server_cpu_s=%.3f exchanges=%zu group=%zu\n",
           total, wall, total / wall, client_cpu, server_cpu, exchanges,
           group_size);
    return 0;
}
