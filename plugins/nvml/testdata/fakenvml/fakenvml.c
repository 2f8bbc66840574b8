/*
 * fakenvml: a simulated libnvidia-ml.so.1 for lemctl's nvml plugin tests.
 *
 * It implements exactly the NVML entry points the plugin (through go-nvml) calls, with the
 * prototypes of go-nvml's own nvml.h, and plays a scripted power trace. The script is the text
 * file named by $LEM_FAKE_NVML_SCRIPT, read at nvmlInit_v2; time 0 of the script is the first
 * nvmlInit_v2 call (CLOCK_MONOTONIC), which is written as "t0 <ns>" to $LEM_FAKE_NVML_LOG so that
 * the test computes the true energy of any interval from the script itself. $LEM_FAKE_NVML_T0
 * (CLOCK_MONOTONIC ns), when set, fixes the origin instead, so that several processes loading the
 * library (a plugin and a pynvml monitor) see one GPU.
 *
 * Script lines (# starts a comment):
 *   gpus N                      number of GPUs (default 1, at most 8)
 *   update_ms MS                energy counter update period (default 100)
 *   init_error CODE             nvmlInit_v2 fails with this nvmlReturn_t
 *   log_calls 1                 append every NVML call's name to the log
 *   seg I SECONDS WATTS         next power plateau of GPU I (the last one lasts forever)
 *   dev I uuid|name TEXT        identity
 *   dev I arch N                nvmlDeviceArchitecture_t (default 9, Hopper)
 *   dev I counter|instant|average|usage 0   the device lacks that energy/power source
 *   dev I persistence 0         persistence mode off
 *   dev I temp START SLOPE      temperature START + SLOPE*t °C (default 40 0)
 *   dev I counter_scale F       the counter reports F times the true energy
 *   dev I reset_at T            the counter restarts from 0 at T s (a driver reload)
 *   dev I stuck FROM TO         the counter stays frozen during [FROM, TO) s
 *   dev I throttle FROM TO HEX  clock-event reasons HEX during [FROM, TO) s
 *   dev I throttle_every PERIOD ON HEX   clock-event reasons HEX during the first ON s of every
 *                               PERIOD s from time 0 (a periodic power cap or thermal slowdown)
 *   dev I process PID|parent|self   a compute process on the GPU (parent = the caller's parent)
 *   dev I limit WATTS           power limit (default 700)
 *
 * Energy: true energy E(t) integrates the plateaus. The counter returns, in mJ, a large base
 * plus E at the last update tick (floor(t/update)*update), scaled, frozen or reset as scripted.
 * Field 186 (instant) returns P(t) in mW; field 185 and nvmlDeviceGetPowerUsage return the mean
 * power over the last second, (E(t) - E(t-1)) / 1 s.
 */
#define NVML_NO_UNVERSIONED_FUNC_DEFS 1
#include "nvml.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXGPU 8
#define MAXSEG 64
#define MAXPROC 8

struct nvmlDevice_st {
	int index;
	char uuid[96];
	char name[96];
	unsigned int arch;
	int has_counter, has_instant, has_average, has_usage;
	int persistence;
	double temp_start, temp_slope;
	double counter_scale;
	double reset_at; /* < 0: never */
	double stuck_from, stuck_to;
	double thr_from, thr_to;
	unsigned long long thr_bits;
	double thr_period, thr_on; /* periodic throttling; period 0: none */
	unsigned long long thr_every_bits;
	int nproc;
	long procs[MAXPROC]; /* -1 parent, -2 self */
	double limit_w;
	int nseg;
	double seg_len[MAXSEG], seg_w[MAXSEG];
};

static struct nvmlDevice_st devs[MAXGPU];
static int ngpu = 1;
static double update_s = 0.1;
static int init_error = 0;
static int log_calls = 0;
static long long t0_ns = -1;
static int initialised = 0;

static long long mono_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double now_s(void) { return (double)(mono_ns() - t0_ns) / 1e9; }

/* log_line appends "<word> <text>" to $LEM_FAKE_NVML_LOG. */
static void log_line(const char *word, const char *text) {
	const char *path = getenv("LEM_FAKE_NVML_LOG");
	if (!path || !*path) return;
	FILE *f = fopen(path, "a");
	if (!f) return;
	fprintf(f, "%s %s\n", word, text);
	fclose(f);
}

#define CALL(name) do { if (log_calls) log_line("call", name); } while (0)

static void defaults(void) {
	memset(devs, 0, sizeof devs);
	for (int i = 0; i < MAXGPU; i++) {
		struct nvmlDevice_st *d = &devs[i];
		d->index = i;
		snprintf(d->uuid, sizeof d->uuid, "GPU-fa4e0000-0000-4000-8000-%012d", i);
		snprintf(d->name, sizeof d->name, "Simulated H200");
		d->arch = NVML_DEVICE_ARCH_HOPPER;
		d->has_counter = d->has_instant = d->has_average = d->has_usage = 1;
		d->persistence = 1;
		d->temp_start = 40;
		d->counter_scale = 1;
		d->reset_at = -1;
		d->stuck_from = d->stuck_to = -1;
		d->thr_from = d->thr_to = -1;
		d->limit_w = 700;
	}
	ngpu = 1;
	update_s = 0.1;
	init_error = 0;
	log_calls = 0;
}

static void load_script(void) {
	defaults();
	const char *path = getenv("LEM_FAKE_NVML_SCRIPT");
	if (!path || !*path) return;
	FILE *f = fopen(path, "r");
	if (!f) return;
	char line[512];
	while (fgets(line, sizeof line, f)) {
		char *hash = strchr(line, '#');
		if (hash) *hash = 0;
		line[strcspn(line, "\r\n")] = 0;
		char key[32], sub[32], rest[256];
		int i, n;
		double a, b;
		if (sscanf(line, "gpus %d", &n) == 1) { ngpu = n < 0 ? 0 : (n > MAXGPU ? MAXGPU : n); continue; }
		if (sscanf(line, "update_ms %lf", &a) == 1) { update_s = a / 1000; continue; }
		if (sscanf(line, "init_error %d", &n) == 1) { init_error = n; continue; }
		if (sscanf(line, "log_calls %d", &n) == 1) { log_calls = n; continue; }
		if (sscanf(line, "seg %d %lf %lf", &i, &a, &b) == 3) {
			if (i >= 0 && i < MAXGPU && devs[i].nseg < MAXSEG) {
				devs[i].seg_len[devs[i].nseg] = a;
				devs[i].seg_w[devs[i].nseg] = b;
				devs[i].nseg++;
			}
			continue;
		}
		if (sscanf(line, "%31s %d %31s", key, &i, sub) == 3 && strcmp(key, "dev") == 0 && i >= 0 && i < MAXGPU) {
			struct nvmlDevice_st *d = &devs[i];
			char *p = strstr(line, sub) + strlen(sub);
			while (*p == ' ' || *p == '\t') p++;
			snprintf(rest, sizeof rest, "%s", p);
			if (!strcmp(sub, "uuid")) snprintf(d->uuid, sizeof d->uuid, "%s", rest);
			else if (!strcmp(sub, "name")) snprintf(d->name, sizeof d->name, "%s", rest);
			else if (!strcmp(sub, "arch")) d->arch = (unsigned)atoi(rest);
			else if (!strcmp(sub, "counter")) d->has_counter = atoi(rest);
			else if (!strcmp(sub, "instant")) d->has_instant = atoi(rest);
			else if (!strcmp(sub, "average")) d->has_average = atoi(rest);
			else if (!strcmp(sub, "usage")) d->has_usage = atoi(rest);
			else if (!strcmp(sub, "persistence")) d->persistence = atoi(rest);
			else if (!strcmp(sub, "temp")) sscanf(rest, "%lf %lf", &d->temp_start, &d->temp_slope);
			else if (!strcmp(sub, "counter_scale")) d->counter_scale = atof(rest);
			else if (!strcmp(sub, "reset_at")) d->reset_at = atof(rest);
			else if (!strcmp(sub, "stuck")) sscanf(rest, "%lf %lf", &d->stuck_from, &d->stuck_to);
			else if (!strcmp(sub, "throttle")) sscanf(rest, "%lf %lf %llx", &d->thr_from, &d->thr_to, &d->thr_bits);
			else if (!strcmp(sub, "throttle_every")) sscanf(rest, "%lf %lf %llx", &d->thr_period, &d->thr_on, &d->thr_every_bits);
			else if (!strcmp(sub, "limit")) d->limit_w = atof(rest);
			else if (!strcmp(sub, "process") && d->nproc < MAXPROC) {
				long pid = !strcmp(rest, "parent") ? -1 : !strcmp(rest, "self") ? -2 : atol(rest);
				d->procs[d->nproc++] = pid;
			}
		}
	}
	fclose(f);
}

/* power at script time t (W); before 0 and after the last plateau the nearest plateau holds */
static double power_at(const struct nvmlDevice_st *d, double t) {
	if (d->nseg == 0) return 0;
	double edge = 0;
	for (int k = 0; k < d->nseg; k++) {
		edge += d->seg_len[k];
		if (t < edge) return d->seg_w[k];
	}
	return d->seg_w[d->nseg - 1];
}

/* true energy (J) from script time 0 to t; negative for t < 0 */
static double energy_to(const struct nvmlDevice_st *d, double t) {
	if (d->nseg == 0) return 0;
	if (t <= 0) return d->seg_w[0] * t;
	double e = 0, start = 0;
	for (int k = 0; k < d->nseg; k++) {
		double end = start + d->seg_len[k];
		if (k == d->nseg - 1 || t < end) return e + d->seg_w[k] * (t - start);
		e += d->seg_w[k] * d->seg_len[k];
		start = end;
	}
	return e;
}

static unsigned long long counter_mj(const struct nvmlDevice_st *d, double t) {
	double tick = floor(t / update_s) * update_s;
	double base = 123456789.0; /* mJ since the simulated driver load */
	if (d->stuck_from >= 0 && tick >= d->stuck_from && tick < d->stuck_to)
		tick = floor(d->stuck_from / update_s) * update_s;
	double e = energy_to(d, tick);
	if (d->reset_at >= 0 && tick >= d->reset_at) {
		e -= energy_to(d, d->reset_at);
		base = 0;
	}
	return (unsigned long long)(base + floor(e * d->counter_scale * 1000));
}

/* go-nvml's nvml.h wraps the opaque handle pointer in a one-member struct (same ABI). */
static struct nvmlDevice_st *dev(nvmlDevice_t h) {
	struct nvmlDevice_st *d = h.handle;
	if (!initialised || d == NULL || d < devs || d >= devs + ngpu) return NULL;
	return d;
}

/* ---- library ---- */

nvmlReturn_t nvmlInit_v2(void) {
	load_script();
	CALL("nvmlInit_v2");
	if (t0_ns < 0) {
		/* Several processes share one timeline when the caller fixes the origin. */
		const char *fixed = getenv("LEM_FAKE_NVML_T0");
		t0_ns = (fixed && *fixed) ? atoll(fixed) : mono_ns();
		char buf[32];
		snprintf(buf, sizeof buf, "%lld", t0_ns);
		log_line("t0", buf);
	}
	if (init_error) return (nvmlReturn_t)init_error;
	initialised = 1;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void) {
	CALL("nvmlShutdown");
	if (!initialised) return NVML_ERROR_UNINITIALIZED;
	initialised = 0;
	return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t r) {
	CALL("nvmlErrorString");
	switch (r) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	default: return "Unknown Error";
	}
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
	CALL("nvmlSystemGetDriverVersion");
	if (!initialised) return NVML_ERROR_UNINITIALIZED;
	snprintf(version, length, "%s", "999.99.99-fake");
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
	CALL("nvmlSystemGetNVMLVersion");
	if (!initialised) return NVML_ERROR_UNINITIALIZED;
	snprintf(version, length, "%s", "12.999.99-fake");
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *v) {
	CALL("nvmlSystemGetCudaDriverVersion");
	if (!initialised) return NVML_ERROR_UNINITIALIZED;
	*v = 12040;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count) {
	CALL("nvmlDeviceGetCount_v2");
	if (!initialised) return NVML_ERROR_UNINITIALIZED;
	*count = (unsigned)ngpu;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
	CALL("nvmlDeviceGetHandleByIndex_v2");
	if (!initialised) return NVML_ERROR_UNINITIALIZED;
	if (index >= (unsigned)ngpu) return NVML_ERROR_INVALID_ARGUMENT;
	device->handle = &devs[index];
	return NVML_SUCCESS;
}

/* ---- identity and environment ---- */

#define DEV_OR_FAIL(h, name) \
	CALL(name); \
	struct nvmlDevice_st *d = dev(h); \
	if (!d) return initialised ? NVML_ERROR_INVALID_ARGUMENT : NVML_ERROR_UNINITIALIZED

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t h, char *uuid, unsigned int length) {
	DEV_OR_FAIL(h, "nvmlDeviceGetUUID");
	snprintf(uuid, length, "%s", d->uuid);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t h, char *name, unsigned int length) {
	DEV_OR_FAIL(h, "nvmlDeviceGetName");
	snprintf(name, length, "%s", d->name);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t h, nvmlPciInfo_t *pci) {
	DEV_OR_FAIL(h, "nvmlDeviceGetPciInfo_v3");
	memset(pci, 0, sizeof *pci);
	pci->bus = (unsigned)(0x18 + d->index);
	pci->pciDeviceId = 0x233510DE;
	snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
	snprintf(pci->busIdLegacy, sizeof pci->busIdLegacy, "0000:%02X:00.0", pci->bus);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetArchitecture(nvmlDevice_t h, nvmlDeviceArchitecture_t *arch) {
	DEV_OR_FAIL(h, "nvmlDeviceGetArchitecture");
	*arch = d->arch;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t h, int *major, int *minor) {
	DEV_OR_FAIL(h, "nvmlDeviceGetCudaComputeCapability");
	static const int majors[] = {0, 0, 3, 5, 6, 7, 7, 8, 8, 9, 10};
	*major = d->arch < 11 ? majors[d->arch] : 10;
	*minor = d->arch == NVML_DEVICE_ARCH_ADA ? 9 : 0;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t h, unsigned int *limit) {
	DEV_OR_FAIL(h, "nvmlDeviceGetEnforcedPowerLimit");
	*limit = (unsigned)(d->limit_w * 1000);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t h, unsigned int *limit) {
	DEV_OR_FAIL(h, "nvmlDeviceGetPowerManagementDefaultLimit");
	*limit = (unsigned)(d->limit_w * 1000);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimitConstraints(nvmlDevice_t h, unsigned int *minLimit, unsigned int *maxLimit) {
	DEV_OR_FAIL(h, "nvmlDeviceGetPowerManagementLimitConstraints");
	*minLimit = 200000;
	*maxLimit = (unsigned)(d->limit_w * 1000);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t h, nvmlEnableState_t *mode) {
	DEV_OR_FAIL(h, "nvmlDeviceGetPersistenceMode");
	*mode = d->persistence ? NVML_FEATURE_ENABLED : NVML_FEATURE_DISABLED;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t h, nvmlEnableState_t *current, nvmlEnableState_t *pending) {
	DEV_OR_FAIL(h, "nvmlDeviceGetEccMode");
	*current = *pending = NVML_FEATURE_ENABLED;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t h, unsigned int *current, unsigned int *pending) {
	DEV_OR_FAIL(h, "nvmlDeviceGetMigMode");
	*current = *pending = NVML_DEVICE_MIG_DISABLE;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t h, nvmlComputeMode_t *mode) {
	DEV_OR_FAIL(h, "nvmlDeviceGetComputeMode");
	*mode = NVML_COMPUTEMODE_DEFAULT;
	return NVML_SUCCESS;
}

/* ---- energy and power ---- */

nvmlReturn_t nvmlDeviceGetTotalEnergyConsumption(nvmlDevice_t h, unsigned long long *energy) {
	DEV_OR_FAIL(h, "nvmlDeviceGetTotalEnergyConsumption");
	if (!d->has_counter) return NVML_ERROR_NOT_SUPPORTED;
	*energy = counter_mj(d, now_s());
	return NVML_SUCCESS;
}

static unsigned int average_mw(const struct nvmlDevice_st *d, double t) {
	return (unsigned)llround((energy_to(d, t) - energy_to(d, t - 1.0)) * 1000);
}

nvmlReturn_t nvmlDeviceGetFieldValues(nvmlDevice_t h, int count, nvmlFieldValue_t *values) {
	DEV_OR_FAIL(h, "nvmlDeviceGetFieldValues");
	double t = now_s();
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	for (int k = 0; k < count; k++) {
		nvmlFieldValue_t *v = &values[k];
		v->timestamp = (long long)wall.tv_sec * 1000000 + wall.tv_nsec / 1000;
		v->latencyUsec = 0;
		v->valueType = NVML_VALUE_TYPE_UNSIGNED_INT;
		v->nvmlReturn = NVML_SUCCESS;
		if (v->fieldId == NVML_FI_DEV_POWER_INSTANT && d->has_instant)
			v->value.uiVal = (unsigned)llround(power_at(d, t) * 1000);
		else if (v->fieldId == NVML_FI_DEV_POWER_AVERAGE && d->has_average)
			v->value.uiVal = average_mw(d, t);
		else
			v->nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
	}
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t h, unsigned int *power) {
	DEV_OR_FAIL(h, "nvmlDeviceGetPowerUsage");
	if (!d->has_usage) return NVML_ERROR_NOT_SUPPORTED;
	*power = average_mw(d, now_s());
	return NVML_SUCCESS;
}

/* ---- slow fields ---- */

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t h, nvmlTemperatureSensors_t sensor, unsigned int *temp) {
	DEV_OR_FAIL(h, "nvmlDeviceGetTemperature");
	if (sensor != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
	double c = d->temp_start + d->temp_slope * now_s();
	*temp = c < 0 ? 0 : (unsigned)llround(c);
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t h, nvmlClockType_t type, unsigned int *clock) {
	DEV_OR_FAIL(h, "nvmlDeviceGetClockInfo");
	switch (type) {
	case NVML_CLOCK_SM: *clock = 1980; return NVML_SUCCESS;
	case NVML_CLOCK_MEM: *clock = 2619; return NVML_SUCCESS;
	default: return NVML_ERROR_NOT_SUPPORTED;
	}
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t h, nvmlUtilization_t *u) {
	DEV_OR_FAIL(h, "nvmlDeviceGetUtilizationRates");
	u->gpu = power_at(d, now_s()) > 150 ? 100 : 0;
	u->memory = u->gpu / 2;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t h, nvmlMemory_t *m) {
	DEV_OR_FAIL(h, "nvmlDeviceGetMemoryInfo");
	m->total = 144384ULL << 20;
	m->used = 1ULL << 30;
	m->free = m->total - m->used;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t h, unsigned long long *reasons) {
	DEV_OR_FAIL(h, "nvmlDeviceGetCurrentClocksEventReasons");
	double t = now_s();
	*reasons = (t >= d->thr_from && t < d->thr_to) ? d->thr_bits : 0;
	if (d->thr_period > 0 && t >= 0 && fmod(t, d->thr_period) < d->thr_on) *reasons |= d->thr_every_bits;
	return NVML_SUCCESS;
}

static nvmlReturn_t procs(struct nvmlDevice_st *d, int n, unsigned int *count, nvmlProcessInfo_t *infos) {
	if (*count < (unsigned)n) {
		*count = (unsigned)n;
		return NVML_ERROR_INSUFFICIENT_SIZE;
	}
	for (int k = 0; k < n; k++) {
		long pid = d->procs[k] == -1 ? (long)getppid() : d->procs[k] == -2 ? (long)getpid() : d->procs[k];
		infos[k].pid = (unsigned)pid;
		infos[k].usedGpuMemory = 1ULL << 30;
		infos[k].gpuInstanceId = 0xFFFFFFFF;
		infos[k].computeInstanceId = 0xFFFFFFFF;
	}
	*count = (unsigned)n;
	return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t h, unsigned int *count, nvmlProcessInfo_t *infos) {
	DEV_OR_FAIL(h, "nvmlDeviceGetComputeRunningProcesses_v3");
	return procs(d, d->nproc, count, infos);
}

nvmlReturn_t nvmlDeviceGetGraphicsRunningProcesses_v3(nvmlDevice_t h, unsigned int *count, nvmlProcessInfo_t *infos) {
	DEV_OR_FAIL(h, "nvmlDeviceGetGraphicsRunningProcesses_v3");
	return procs(d, 0, count, infos);
}
