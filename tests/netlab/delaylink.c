/* delaylink: a user-space delay line between two TUN devices in two network namespaces.
 *
 * usage: delaylink NETNS_A IFNAME_A NETNS_B IFNAME_B DELAY_US [LOSS_PPM [OFFLOAD]]
 *
 * NETNS_x is a name under /run/netns or a path. The process joins namespace A, creates the
 * non-persistent TUN device IFNAME_A there, does the same in B, prints "ready" and then copies
 * every packet read on one device to the other after DELAY_US microseconds (each way), dropping
 * LOSS_PPM packets per million. The devices vanish when the process exits, which cuts the link.
 *
 * Why C: the kernel has no netem, and Python cannot move ~100 MB/s of packets.
 * Without loss (and unless OFFLOAD is 0), both devices get TSO/checksum offload (IFF_VNET_HDR): TCP then crosses the line
 * as 64 KiB GSO super-packets, like a real NIC with TSO, and the line costs ~40x fewer
 * syscalls. The virtio-net header is passed through unchanged (same format on both sides).
 * With loss, offload stays off so that each dropped packet is one MTU-sized segment.
 * Per direction a FIFO (constant delay keeps due times ordered) capped in packets and bytes;
 * beyond that it drops like a full router queue.
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

#define RING_SLOTS 65536u            /* power of two */
#define MAX_QUEUED_BYTES (256u << 20) /* per direction */
#define MAX_PACKET 70000             /* virtio-net header + 64 KiB GSO packet */
#define READ_BURST 128

struct pkt {
    uint64_t due;
    uint32_t len;
    unsigned char *data;
};

struct ring {
    struct pkt *slot;
    uint32_t head, tail; /* head: next to send; tail: next free */
    uint64_t bytes, dropped;
};

static unsigned char scratch[MAX_PACKET];

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

static int open_tun(const char *name, int offload) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) die("/dev/net/tun");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) != 0) die("TUNSETIFF");
    if (offload) {
        unsigned int feat = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
        if (ioctl(fd, TUNSETOFFLOAD, feat) != 0) die("TUNSETOFFLOAD");
    }
    return fd;
}

static void ring_init(struct ring *r) {
    r->slot = calloc(RING_SLOTS, sizeof(struct pkt));
    if (!r->slot) die("calloc");
    r->head = r->tail = 0;
    r->bytes = r->dropped = 0;
}

static int ring_empty(const struct ring *r) { return r->tail == r->head; }

/* Read what is waiting on `fd` into `r`, stamping each packet with its departure time. */
static void pull(int fd, struct ring *r, uint64_t delay_ns, uint32_t loss_ppm) {
    for (int i = 0; i < READ_BURST; i++) {
        ssize_t n = read(fd, scratch, sizeof scratch);
        if (n < 0) {
            if (errno == EINTR) continue;
            return; /* EAGAIN: drained */
        }
        if (n == 0) continue;
        if (loss_ppm && (uint32_t)(random() % 1000000) < loss_ppm) continue;
        if (r->tail - r->head >= RING_SLOTS || r->bytes + (uint64_t)n > MAX_QUEUED_BYTES) {
            r->dropped++;
            continue;
        }
        struct pkt *p = &r->slot[r->tail & (RING_SLOTS - 1)];
        p->data = malloc((size_t)n);
        if (!p->data) die("malloc");
        memcpy(p->data, scratch, (size_t)n);
        p->len = (uint32_t)n;
        p->due = now_ns() + delay_ns;
        r->bytes += (uint64_t)n;
        r->tail++;
    }
}

/* Write every packet of `r` that is due by `now` to `fd`. */
static void push(int fd, struct ring *r, uint64_t now) {
    while (!ring_empty(r)) {
        struct pkt *p = &r->slot[r->head & (RING_SLOTS - 1)];
        if (p->due > now) return;
        /* a refused packet (EIO/EINVAL on a device going down, ENOBUFS) is simply lost */
        if (write(fd, p->data, p->len) < 0 && errno == EBADF) die("write");
        r->bytes -= p->len;
        free(p->data);
        p->data = NULL;
        r->head++;
    }
}

static uint64_t head_due(const struct ring *r) {
    return ring_empty(r) ? UINT64_MAX : r->slot[r->head & (RING_SLOTS - 1)].due;
}

int main(int argc, char **argv) {
    if (argc < 6 || argc > 8) {
        fprintf(stderr, "usage: %s NETNS_A IFNAME_A NETNS_B IFNAME_B DELAY_US [LOSS_PPM [OFFLOAD]]\n",
                argv[0]);
        return 2;
    }
    uint64_t delay_ns = strtoull(argv[5], NULL, 10) * 1000ull;
    uint32_t loss_ppm = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 0;
    int offload = loss_ppm == 0 && (argc < 8 || atoi(argv[7]) != 0);
    signal(SIGPIPE, SIG_IGN);
    srandom((unsigned)now_ns());

    join_netns(argv[1]);
    int fd_a = open_tun(argv[2], offload);
    join_netns(argv[3]);
    int fd_b = open_tun(argv[4], offload);

    struct ring a_to_b, b_to_a;
    ring_init(&a_to_b);
    ring_init(&b_to_a);
    printf("ready\n");
    fflush(stdout);

    for (;;) {
        uint64_t now = now_ns();
        push(fd_b, &a_to_b, now);
        push(fd_a, &b_to_a, now);

        uint64_t next = head_due(&a_to_b), d = head_due(&b_to_a);
        if (d < next) next = d;
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
