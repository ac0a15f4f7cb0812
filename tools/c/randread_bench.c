/* 4 KiB random reads at queue depth QD with liburing, refilled as
 * completions arrive: the C yardstick for tools/bench_ring.py.
 * usage: randread_bench FILE SECONDS QD [direct] [fixed] [sqpoll]  -> JSON line */
#define _GNU_SOURCE
#include <fcntl.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BS 4096

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned long long rng = 88172645463325252ULL;
static unsigned long long xorshift(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng;
}

int main(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage\n"); return 2; }
    const char *path = argv[1];
    double seconds = atof(argv[2]);
    unsigned qd = atoi(argv[3]);
    int direct = 0, fixed = 0, sqpoll = 0;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "direct")) direct = 1;
        if (!strcmp(argv[i], "fixed")) fixed = 1;
        if (!strcmp(argv[i], "sqpoll")) sqpoll = 1;
    }
    int fd = open(path, O_RDONLY | (direct ? O_DIRECT : 0));
    if (fd < 0) { perror("open"); return 1; }
    struct stat st; fstat(fd, &st);
    unsigned long long blocks = st.st_size / BS;
    struct io_uring ring;
    struct io_uring_params p; memset(&p, 0, sizeof p);
    if (sqpoll) { p.flags |= IORING_SETUP_SQPOLL; p.sq_thread_idle = 100; }
    if (io_uring_queue_init_params(qd * 2, &ring, &p) < 0) { perror("init"); return 1; }
    char *arena; if (posix_memalign((void **)&arena, 4096, (size_t)qd * BS)) return 1;
    struct iovec *iov = calloc(qd, sizeof *iov);
    for (unsigned i = 0; i < qd; i++) { iov[i].iov_base = arena + (size_t)i * BS; iov[i].iov_len = BS; }
    int file = fd;
    if (fixed) {
        if (io_uring_register_buffers(&ring, iov, qd) < 0) { perror("regbuf"); return 1; }
        if (io_uring_register_files(&ring, &fd, 1) < 0) { perror("regfile"); return 1; }
        file = 0;
    }
    for (unsigned i = 0; i < qd; i++) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
        unsigned long long off = (xorshift() % blocks) * BS;
        if (fixed) { io_uring_prep_read_fixed(sqe, file, iov[i].iov_base, BS, off, i); sqe->flags |= IOSQE_FIXED_FILE; }
        else io_uring_prep_read(sqe, file, iov[i].iov_base, BS, off);
        io_uring_sqe_set_data64(sqe, i);
    }
    io_uring_submit(&ring);
    unsigned long long ios = 0;
    double t0 = now(), end = t0 + seconds, t = t0;
    while (t < end) {
        struct io_uring_cqe *cqe;
        if (io_uring_wait_cqe(&ring, &cqe) < 0) { perror("wait"); return 1; }
        struct io_uring_cqe *cqes[64];
        unsigned n = io_uring_peek_batch_cqe(&ring, cqes, 64);
        for (unsigned k = 0; k < n; k++) {
            if (cqes[k]->res != BS) { fprintf(stderr, "short read %d\n", cqes[k]->res); return 1; }
            unsigned i = cqes[k]->user_data;
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            unsigned long long off = (xorshift() % blocks) * BS;
            if (fixed) { io_uring_prep_read_fixed(sqe, file, iov[i].iov_base, BS, off, i); sqe->flags |= IOSQE_FIXED_FILE; }
            else io_uring_prep_read(sqe, file, iov[i].iov_base, BS, off);
            io_uring_sqe_set_data64(sqe, i);
        }
        io_uring_cq_advance(&ring, n);
        io_uring_submit(&ring);
        ios += n;
        if ((ios & 1023) < n) t = now();
    }
    t = now();
    printf("{\"ios\": %llu, \"seconds\": %.6f, \"iops\": %.1f}\n", ios, t - t0, ios / (t - t0));
    io_uring_queue_exit(&ring);
    return 0;
}
