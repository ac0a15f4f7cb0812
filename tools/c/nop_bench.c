/* NOP submit+reap rate with liburing: the C yardstick for tools/bench_ring.py.
 * usage: nop_bench BATCH SECONDS   -> one JSON line */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    unsigned batch = argc > 1 ? atoi(argv[1]) : 32;
    double seconds = argc > 2 ? atof(argv[2]) : 2.0;
    struct io_uring ring;
    if (io_uring_queue_init(64, &ring, 0) < 0) { perror("queue_init"); return 1; }
    unsigned long long ops = 0;
    double t0 = now(), end = t0 + seconds, t;
    do {
        for (unsigned i = 0; i < 64; i++) {
            for (unsigned j = 0; j < batch; j++) {
                struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
                io_uring_prep_nop(sqe);
                io_uring_sqe_set_data64(sqe, j);
            }
            io_uring_submit_and_wait(&ring, batch);
            struct io_uring_cqe *cqes[64];
            unsigned n = io_uring_peek_batch_cqe(&ring, cqes, batch);
            for (unsigned k = 0; k < n; k++)
                if (cqes[k]->res != 0 || cqes[k]->user_data >= batch) { fprintf(stderr, "bad cqe\n"); return 1; }
            io_uring_cq_advance(&ring, n);
            ops += n;
        }
        t = now();
    } while (t < end);
    printf("{\"ops\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.1f}\n", ops, t - t0, ops / (t - t0));
    io_uring_queue_exit(&ring);
    return 0;
}
