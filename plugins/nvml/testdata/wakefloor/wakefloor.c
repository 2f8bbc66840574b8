// wakefloor wakes every INTERVAL_NS nanoseconds on an absolute CLOCK_MONOTONIC deadline and does
// nothing else, forever: the cheapest sampler loop there is. BenchmarkWakeFloor reads its CPU
// time from /proc to give the machine's floor for any sampler at that interval.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
	if (argc != 2 || atoll(argv[1]) <= 0) {
		fprintf(stderr, "usage: wakefloor INTERVAL_NS\n");
		return 2;
	}
	long long interval = atoll(argv[1]);
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	for (;;) {
		long long ns = t.tv_nsec + interval;
		t.tv_sec += ns / 1000000000LL;
		t.tv_nsec = ns % 1000000000LL;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) != 0) {
		}
	}
}
