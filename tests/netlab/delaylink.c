/* delaylink: a user-space delay line between two TUN devices in two network namespaces.
 *
 * usage: delaylink NETNS_A IFNAME_A NETNS_B IFNAME_B DELAY_US [LOSS_PPM]
 *
 * NETNS_x is a name under /run/netns or a path. The process joins namespace A, creates the
 * non-persistent TUN device IFNAME_A there, does the same in B, prints "ready" and then copies
 * every IP packet read on one device to the other after DELAY_US microseconds (each way), dropping
 * LOSS_PPM packets per million. The devices vanish when the process exits, which cuts the link.
 *
 * Why C: the kernel has no netem, and Python cannot move ~100 MB/s of 1500-byte packets.
 * Per direction a FIFO ring (constant delay keeps due times ordered) of RING_SLOTS packets;
 * a full ring drops like a real router queue would.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define RING_SLOTS 65536u /* power of two; ~10 s of queue at 100 MB/s would never be needed */
#define SLOT_SIZE 2048u   /* TUN MTU stays at 1500; larger packets are truncated-dropped */
#define READ_BURST 256

struct ring {
    unsigned char *buf;
    uint64_t *due;
    uint16_t *len;
    uint32_t head, tail; /* head: next to send; tail: next free */
    uint64_t dropped;
};

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void join_netns(const char *ns) {
    char path[512];
    if (strchr(ns, '/'))
        snprintf(path, sizeof path, "%s", ns);
    else
        snprintf(path, sizeof path, "/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(path);
    if (setns(fd, CLONE_NEWNET) != 0) die("setns");
    close(fd);
}

static int open_tun(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) die("/dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) die("TUNSETIFF");
    return fd;
}

static void ring_init(struct ring *r) {
    /* large mallocs are mmap-backed: only the pages actually used become resident */
    r->buf = malloc((size_t)RING_SLOTS * SLOT_SIZE);
    r->due = malloc(sizeof(uint64_t) * RING_SLOTS);
    r->len = malloc(sizeof(uint16_t) * RING_SLOTS);
    if (!r->buf || !r->due || !r->len) die("malloc");
    r->head = r->tail = 0;
    r->dropped = 0;
}

static int ring_full(const struct ring *r) { return r->tail - r->head >= RING_SLOTS; }
static int ring_empty(const struct ring *r) { return r->tail == r->head; }

/* Read what is waiting on `fd` into `r`, stamping each packet with its departure time. */
static void pull(int fd, struct ring *r, uint64_t delay_ns, uint32_t loss_ppm) {
    for (int i = 0; i < READ_BURST; i++) {
        if (ring_full(r)) {
            unsigned char scratch[SLOT_SIZE];
            if (read(fd, scratch, sizeof scratch) < 0) return;
            r->dropped++;
            continue;
        }
        uint32_t slot = r->tail & (RING_SLOTS - 1);
        ssize_t n = read(fd, r->buf + (size_t)slot * SLOT_SIZE, SLOT_SIZE);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; /* EAGAIN: drained */
        }
        if (n == 0 || n >= (ssize_t)SLOT_SIZE) continue;
        if (loss_ppm && (uint32_t)(random() % 1000000) < loss_ppm) continue;
        r->len[slot] = (uint16_t)n;
        r->due[slot] = now_ns() + delay_ns;
        r->tail++;
    }
}

/* Write every packet of `r` that is due by `now` to `fd`. */
static void push(int fd, struct ring *r, uint64_t now) {
    while (!ring_empty(r)) {
        uint32_t slot = r->head & (RING_SLOTS - 1);
        if (r->due[slot] > now) return;
        if (write(fd, r->buf + (size_t)slot * SLOT_SIZE, r->len[slot]) < 0 && errno != EAGAIN &&
            errno != EINTR && errno != EIO)
            die("write");
        r->head++;
    }
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 7) {
        fprintf(stderr, "usage: %s NETNS_A IFNAME_A NETNS_B IFNAME_B DELAY_US [LOSS_PPM]\n", argv[0]);
        return 2;
    }
    uint64_t delay_ns = strtoull(argv[5], NULL, 10) * 1000ull;
    uint32_t loss_ppm = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 0;
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)now_ns());

    join_netns(argv[1]);
    int fd_a = open_tun(argv[2]);
    join_netns(argv[3]);
    int fd_b = open_tun(argv[4]);

    struct ring a_to_b, b_to_a;
    ring_init(&a_to_b);
    ring_init(&b_to_a);
    printf("ready\n");
    fflush(stdout);

    for (;;) {
        uint64_t now = now_ns();
        push(fd_b, &a_to_b, now);
        push(fd_a, &b_to_a, now);

        uint64_t next = UINT64_MAX;
        if (!ring_empty(&a_to_b)) next = a_to_b.due[a_to_b.head & (RING_SLOTS - 1)];
        if (!ring_empty(&b_to_a)) {
            uint64_t d = b_to_a.due[b_to_a.head & (RING_SLOTS - 1)];
            if (d < next) next = d;
        }
        struct pollfd pfd[2] = {{fd_a, POLLIN, 0}, {fd_b, POLLIN, 0}};
        struct timespec ts, *tsp = NULL;
        if (next != UINT64_MAX) {
            uint64_t wait = next > now ? next - now : 0;
            ts.tv_sec = (time_t)(wait / 1000000000ull);
            ts.tv_nsec = (long)(wait % 1000000000ull);
            tsp = &ts;
        }
        int n = ppoll(pfd, 2, tsp, NULL);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("ppoll");
        }
        if (pfd[0].revents & POLLIN) pull(fd_a, &a_to_b, delay_ns, loss_ppm);
        if (pfd[1].revents & POLLIN) pull(fd_b, &b_to_a, delay_ns, loss_ppm);
        if ((pfd[0].revents | pfd[1].revents) & (POLLERR | POLLHUP | POLLNVAL)) {
            fprintf(stderr, "delaylink: device gone\n");
            return 1;
        }
    }
}
