// SPDX-License-Identifier: GPL-2.0
/*
 * hmmbench bench: the device-exclusive -> CPU-restore loop in C, the baseline for the Python/cffi agent.
 * Each iteration makes one page device-exclusive (HMM_DMIRROR_EXCLUSIVE) and reads it with the CPU,
 * which faults it back. The ioctl number comes from the host (it depends on the kernel version).
 * Usage: exclusive_loop ITERATIONS IOCTL_NUMBER   (prints one JSON line)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct hmm_dmirror_cmd {
	uint64_t addr;
	uint64_t ptr;
	uint64_t npages;
	uint64_t cpages;
	uint64_t faults;
};

int main(int argc, char **argv)
{
	struct hmm_dmirror_cmd cmd;
	struct timespec a, b;
	static unsigned char mirror[4096];
	volatile unsigned char *p;
	unsigned long request, sum = 0;
	long i, iterations;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: %s ITERATIONS IOCTL_NUMBER\n", argv[0]);
		return 2;
	}
	iterations = atol(argv[1]);
	request = strtoul(argv[2], NULL, 0);
	fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0) {
		perror("open /dev/hmm_dmirror0");
		return 2;
	}
	p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	madvise((void *)p, 4096, MADV_NOHUGEPAGE);
	p[0] = 1;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < iterations; i++) {
		memset(&cmd, 0, sizeof(cmd));
		cmd.addr = (uintptr_t)p;
		cmd.ptr = (uintptr_t)mirror;
		cmd.npages = 1;
		if (ioctl(fd, request, &cmd)) {
			perror("HMM_DMIRROR_EXCLUSIVE");
			return 1;
		}
		sum += p[0];
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("{\"iterations\": %ld, \"seconds\": %.6f, \"sum\": %lu}\n", iterations,
	       (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9, sum);
	return 0;
}
