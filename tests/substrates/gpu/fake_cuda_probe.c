/* FAKE libpi0_cuda_probe for the GPU sampler's tests: the C ABI of cuda_probe_api.h, with CUDA
 * devices and probe results read from the same state file as the fake NVML (the environment
 * variable PI0_FAKE_NVML_STATE), re-read on every call. Lines it reads (others are ignored):
 *   cuda_abi=<n>                  what pi0_cuda_probe_abi_version returns (default: the real one)
 *   cuda_count=<n>                what pi0_cuda_device_count returns (default: number of cuda
 *                                 lines); a negative value is a runtime error
 *   cuda key=value ...            one CUDA device; the i-th cuda line is CUDA ordinal i. Keys:
 *                                 uuid, name, sm, sm_clock, mem_clock, bus, mem_total,
 *                                 nominal (bytes/s), achieved (bytes/s, or FAIL: the probe fails)
 * Test hooks: pi0_fake_cuda_probe_runs(), the number of pi0_cuda_bandwidth_probe calls, and
 * pi0_fake_cuda_probe_opens(), the number of pi0_cuda_probe_abi_version calls (one per load).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_probe_api.h"

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_MAX_DEVICES 8

typedef struct {
  char uuid[64];
  char name[64];
  int sm, smClock, memClock, bus;
  unsigned long long memTotal;
  double nominal, achieved;
  int achievedFails;
} FakeCudaDevice;

typedef struct {
  int abi;
  int count;
  int haveCount;
  int devices;
  FakeCudaDevice device[FAKE_MAX_DEVICES];
} FakeCudaState;

static int gRuns;
static int gOpens;

static void loadState(FakeCudaState* s) {
  memset(s, 0, sizeof(*s));
  s->abi = PI0_CUDA_PROBE_ABI_VERSION;
  const char* path = getenv("PI0_FAKE_NVML_STATE");
  FILE* f = path != NULL ? fopen(path, "r") : NULL;
  if (f == NULL) return;
  char line[1024];
  while (fgets(line, sizeof(line), f) != NULL) {
    if (strncmp(line, "cuda_abi=", 9) == 0) {
      s->abi = atoi(line + 9);
    } else if (strncmp(line, "cuda_count=", 11) == 0) {
      s->count = atoi(line + 11);
      s->haveCount = 1;
    } else if (strncmp(line, "cuda ", 5) == 0 && s->devices < FAKE_MAX_DEVICES) {
      FakeCudaDevice* d = &s->device[s->devices++];
      for (char* token = strtok(line + 5, " \t\n"); token != NULL; token = strtok(NULL, " \t\n")) {
        char* value = strchr(token, '=');
        if (value == NULL) continue;
        *value++ = '\0';
        if (strcmp(token, "uuid") == 0)
          snprintf(d->uuid, sizeof(d->uuid), "%s", value);
        else if (strcmp(token, "name") == 0)
          snprintf(d->name, sizeof(d->name), "%s", value);
        else if (strcmp(token, "sm") == 0)
          d->sm = atoi(value);
        else if (strcmp(token, "sm_clock") == 0)
          d->smClock = atoi(value);
        else if (strcmp(token, "mem_clock") == 0)
          d->memClock = atoi(value);
        else if (strcmp(token, "bus") == 0)
          d->bus = atoi(value);
        else if (strcmp(token, "mem_total") == 0)
          d->memTotal = strtoull(value, NULL, 10);
        else if (strcmp(token, "nominal") == 0)
          d->nominal = strtod(value, NULL);
        else if (strcmp(token, "achieved") == 0) {
          d->achievedFails = strcmp(value, "FAIL") == 0;
          d->achieved = d->achievedFails ? 0 : strtod(value, NULL);
        }
      }
    }
  }
  fclose(f);
  if (!s->haveCount) s->count = s->devices;
}

FAKE_EXPORT int pi0_fake_cuda_probe_runs(void) {
  return gRuns;
}

FAKE_EXPORT int pi0_fake_cuda_probe_opens(void) {
  return gOpens;
}

FAKE_EXPORT int pi0_cuda_probe_abi_version(void) {
  ++gOpens;
  FakeCudaState s;
  loadState(&s);
  return s.abi;
}

FAKE_EXPORT int pi0_cuda_device_count(char* err, size_t n) {
  FakeCudaState s;
  loadState(&s);
  if (s.count < 0) snprintf(err, n, "fake CUDA runtime error");
  if (s.count == 0) snprintf(err, n, "fake CUDA: no CUDA device");
  return s.count;
}

FAKE_EXPORT int pi0_cuda_device_properties(int dev, struct pi0_cuda_properties* out, char* err,
                                           size_t n) {
  FakeCudaState s;
  loadState(&s);
  if (dev < 0 || dev >= s.devices) {
    snprintf(err, n, "fake CUDA: invalid device %d", dev);
    return 1;
  }
  const FakeCudaDevice* d = &s.device[dev];
  memset(out, 0, sizeof(*out));
  snprintf(out->name, sizeof(out->name), "%s", d->name);
  snprintf(out->uuid, sizeof(out->uuid), "%s", d->uuid);
  out->total_memory_bytes = d->memTotal;
  out->sm_count = d->sm;
  out->sm_clock_mhz = d->smClock;
  out->memory_clock_mhz = d->memClock;
  out->memory_bus_width_bits = d->bus;
  out->nominal_bandwidth_bytes_per_second = d->nominal;
  return 0;
}

FAKE_EXPORT int pi0_cuda_bandwidth_probe(int dev, double* achieved, char* err, size_t n) {
  ++gRuns;
  FakeCudaState s;
  loadState(&s);
  if (dev < 0 || dev >= s.devices) {
    snprintf(err, n, "fake CUDA: invalid device %d", dev);
    return 1;
  }
  if (s.device[dev].achievedFails) {
    snprintf(err, n, "fake CUDA: probe kernel failed");
    return 1;
  }
  *achieved = s.device[dev].achieved;
  return 0;
}
