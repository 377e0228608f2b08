/* FAKE libnvidia-ml for the GPU sampler's tests: a shared library exporting the NVML functions
 * the sampler resolves, with GPUs and values read from a small text file named by the
 * environment variable PI0_FAKE_NVML_STATE. The file is re-read on every call, so a test can
 * change values between two samples. It is never installed or used outside the tests.
 *
 * State file, one directive per line, `#` starts a comment:
 *   init=SUCCESS | <error>        what nvmlInit_v2 returns (default SUCCESS)
 *   count=<n> | <error>           what nvmlDeviceGetCount_v2 reports (default: number of gpu lines)
 *   event_create=<error>          nvmlEventSetCreate fails with it
 *   gpu key=value ...             one GPU; the i-th gpu line is NVML index i
 * gpu keys (values are numbers, or an NVML return-code name without the NVML_ERROR_ prefix,
 * e.g. NOT_SUPPORTED or GPU_IS_LOST, which the corresponding function then returns):
 *   name="..." uuid=...           strings (double quotes allow spaces)
 *   handle=<error>                nvmlDeviceGetHandleByIndex_v2 fails for this GPU
 *   util=<percent>                nvmlDeviceGetUtilizationRates .gpu
 *   mem_total=<bytes> mem_used=<bytes>   nvmlDeviceGetMemoryInfo (free = total - used);
 *                                 an error code in either makes the call return it
 *   mem_free=<bytes>              overrides the free memory nvmlDeviceGetMemoryInfo reports
 *   compute_mode=<n> | <error>    nvmlDeviceGetComputeMode (default 0, DEFAULT)
 *   temp=<celsius>  power_mw=<milliwatts>
 *   events=<error>                nvmlDeviceRegisterEvents returns it (e.g. NOT_SUPPORTED)
 *   xid=<n>                       cumulative number of XID critical errors the GPU has had; the
 *                                 events after the count seen at registration are delivered,
 *                                 one per nvmlEventSetWait_v2; an error code makes the wait fail
 *   xid_code=<n>                  the XID number delivered in eventData (default 79)
 *
 * Built three ways (see CMakeLists.txt): complete; PI0_FAKE_NVML_PARTIAL (no nvmlErrorString,
 * nvmlDeviceGetPowerUsage, nvmlDeviceGetComputeMode or event functions: "a function missing");
 * PI0_FAKE_NVML_BROKEN (no
 * nvmlDeviceGetHandleByIndex_v2: a required function missing).
 *
 * Test hooks: pi0_fake_nvml_init_count(), pi0_fake_nvml_shutdown_count(),
 * pi0_fake_nvml_last_wait_timeout() (the timeoutMs of the last nvmlEventSetWait_v2, -1 before
 * any) and pi0_fake_nvml_event_set_creates() (successful nvmlEventSetCreate calls).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FAKE_EXPORT __attribute__((visibility("default")))
#define FAKE_MAX_GPUS 8

/* The NVML ABI, declared independently of the sampler's nvml_api.h. */
typedef int nvmlReturn_t;
enum {
  NVML_SUCCESS = 0,
  NVML_ERROR_UNINITIALIZED = 1,
  NVML_ERROR_INVALID_ARGUMENT = 2,
  NVML_ERROR_NOT_SUPPORTED = 3,
  NVML_ERROR_INSUFFICIENT_SIZE = 7,
  NVML_ERROR_TIMEOUT = 10,
  NVML_ERROR_UNKNOWN = 999
};
typedef struct nvmlDevice_st {
  int index;
} * nvmlDevice_t;
typedef struct nvmlEventSet_st {
  int registered[FAKE_MAX_GPUS];
} * nvmlEventSet_t;
typedef struct {
  unsigned int gpu;
  unsigned int memory;
} nvmlUtilization_t;
typedef struct {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
} nvmlMemory_t;
typedef struct {
  nvmlDevice_t device;
  unsigned long long eventType;
  unsigned long long eventData;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
} nvmlEventData_t;
#define NVML_EVENT_TYPE_XID_CRITICAL_ERROR 0x0000000000000008ULL

static const struct {
  const char* name;
  int code;
} kCodes[] = {
    {"SUCCESS", 0},
    {"UNINITIALIZED", 1},
    {"INVALID_ARGUMENT", 2},
    {"NOT_SUPPORTED", 3},
    {"NO_PERMISSION", 4},
    {"ALREADY_INITIALIZED", 5},
    {"NOT_FOUND", 6},
    {"INSUFFICIENT_SIZE", 7},
    {"INSUFFICIENT_POWER", 8},
    {"DRIVER_NOT_LOADED", 9},
    {"TIMEOUT", 10},
    {"IRQ_ISSUE", 11},
    {"LIBRARY_NOT_FOUND", 12},
    {"FUNCTION_NOT_FOUND", 13},
    {"CORRUPTED_INFOROM", 14},
    {"GPU_IS_LOST", 15},
    {"RESET_REQUIRED", 16},
    {"OPERATING_SYSTEM", 17},
    {"LIB_RM_VERSION_MISMATCH", 18},
    {"IN_USE", 19},
    {"MEMORY", 20},
    {"NO_DATA", 21},
    {"UNKNOWN", 999},
};

/* A number, or the NVML error a function returns instead of it. */
typedef struct {
  unsigned long long value;
  int code;
} Value;

typedef struct {
  char name[96];
  char uuid[96];
  Value handle, util, memTotal, memUsed, memFree, temp, powerMw, events, xid, xidCode, computeMode;
  int haveMemFree;
} FakeGpu;

typedef struct {
  int ok; /* the file was read */
  Value init;
  Value count;
  int haveCount;
  Value eventCreate;
  int gpus;
  FakeGpu gpu[FAKE_MAX_GPUS];
} FakeState;

static struct nvmlDevice_st gHandles[FAKE_MAX_GPUS];
static struct nvmlEventSet_st gEventSet;
static int gInitialized;
static unsigned long long gDelivered[FAKE_MAX_GPUS];
static int gInitCount;
static int gShutdownCount;
static int gLastWaitTimeout = -1;
static int gEventSetCreates;

static Value parseValue(const char* text) {
  Value v = {0, NVML_SUCCESS};
  if (isdigit((unsigned char)text[0])) {
    v.value = strtoull(text, NULL, 10);
    return v;
  }
  for (size_t i = 0; i < sizeof(kCodes) / sizeof(kCodes[0]); ++i) {
    if (strcmp(text, kCodes[i].name) == 0) {
      v.code = kCodes[i].code;
      return v;
    }
  }
  v.code = NVML_ERROR_UNKNOWN;
  return v;
}

/* Splits "key=value" or key="quoted value" tokens off *cursor; returns 0 at the end. */
static int nextToken(char** cursor, char** key, char** value) {
  char* p = *cursor;
  while (*p == ' ' || *p == '\t')
    ++p;
  if (*p == '\0' || *p == '\n' || *p == '#') return 0;
  *key = p;
  while (*p != '\0' && *p != '=' && !isspace((unsigned char)*p))
    ++p;
  if (*p != '=') {
    *value = p;
    if (*p != '\0') *p++ = '\0';
    *cursor = p;
    return 1;
  }
  *p++ = '\0';
  if (*p == '"') {
    *value = ++p;
    while (*p != '\0' && *p != '"')
      ++p;
  } else {
    *value = p;
    while (*p != '\0' && !isspace((unsigned char)*p))
      ++p;
  }
  if (*p != '\0') *p++ = '\0';
  *cursor = p;
  return 1;
}

static void loadState(FakeState* s) {
  memset(s, 0, sizeof(*s));
  const char* path = getenv("PI0_FAKE_NVML_STATE");
  FILE* f = path != NULL ? fopen(path, "r") : NULL;
  if (f == NULL) return;
  s->ok = 1;
  char line[1024];
  while (fgets(line, sizeof(line), f) != NULL) {
    char* cursor = line;
    char* key = NULL;
    char* value = NULL;
    if (!nextToken(&cursor, &key, &value)) continue;
    if (strcmp(key, "init") == 0) {
      s->init = parseValue(value);
    } else if (strcmp(key, "count") == 0) {
      s->count = parseValue(value);
      s->haveCount = 1;
    } else if (strcmp(key, "event_create") == 0) {
      s->eventCreate = parseValue(value);
    } else if (strcmp(key, "gpu") == 0 && s->gpus < FAKE_MAX_GPUS) {
      FakeGpu* g = &s->gpu[s->gpus++];
      g->xidCode.value = 79;
      while (nextToken(&cursor, &key, &value)) {
        if (strcmp(key, "name") == 0)
          snprintf(g->name, sizeof(g->name), "%s", value);
        else if (strcmp(key, "uuid") == 0)
          snprintf(g->uuid, sizeof(g->uuid), "%s", value);
        else if (strcmp(key, "handle") == 0)
          g->handle = parseValue(value);
        else if (strcmp(key, "util") == 0)
          g->util = parseValue(value);
        else if (strcmp(key, "mem_total") == 0)
          g->memTotal = parseValue(value);
        else if (strcmp(key, "mem_used") == 0)
          g->memUsed = parseValue(value);
        else if (strcmp(key, "mem_free") == 0) {
          g->memFree = parseValue(value);
          g->haveMemFree = 1;
        } else if (strcmp(key, "compute_mode") == 0)
          g->computeMode = parseValue(value);
        else if (strcmp(key, "temp") == 0)
          g->temp = parseValue(value);
        else if (strcmp(key, "power_mw") == 0)
          g->powerMw = parseValue(value);
        else if (strcmp(key, "events") == 0)
          g->events = parseValue(value);
        else if (strcmp(key, "xid") == 0)
          g->xid = parseValue(value);
        else if (strcmp(key, "xid_code") == 0)
          g->xidCode = parseValue(value);
      }
    }
  }
  fclose(f);
  if (!s->haveCount) s->count.value = (unsigned long long)s->gpus;
}

/* Loads the state and resolves `device` to its GPU; returns an NVML code. */
static nvmlReturn_t gpuOf(nvmlDevice_t device, FakeState* s, FakeGpu** gpu) {
  if (!gInitialized) return NVML_ERROR_UNINITIALIZED;
  loadState(s);
  if (device == NULL || device < gHandles || device >= gHandles + FAKE_MAX_GPUS ||
      device->index >= s->gpus) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  *gpu = &s->gpu[device->index];
  return NVML_SUCCESS;
}

FAKE_EXPORT int pi0_fake_nvml_init_count(void) {
  return gInitCount;
}
FAKE_EXPORT int pi0_fake_nvml_shutdown_count(void) {
  return gShutdownCount;
}
FAKE_EXPORT int pi0_fake_nvml_last_wait_timeout(void) {
  return gLastWaitTimeout;
}
FAKE_EXPORT int pi0_fake_nvml_event_set_creates(void) {
  return gEventSetCreates;
}

FAKE_EXPORT nvmlReturn_t nvmlInit_v2(void) {
  FakeState s;
  loadState(&s);
  if (!s.ok) return NVML_ERROR_UNKNOWN;
  if (s.init.code != NVML_SUCCESS) return s.init.code;
  gInitialized = 1;
  ++gInitCount;
  memset(&gEventSet, 0, sizeof(gEventSet));
  memset(gDelivered, 0, sizeof(gDelivered));
  for (int i = 0; i < FAKE_MAX_GPUS; ++i)
    gHandles[i].index = i;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlShutdown(void) {
  if (!gInitialized) return NVML_ERROR_UNINITIALIZED;
  gInitialized = 0;
  ++gShutdownCount;
  return NVML_SUCCESS;
}

#ifndef PI0_FAKE_NVML_PARTIAL
FAKE_EXPORT const char* nvmlErrorString(nvmlReturn_t result) {
  switch (result) {
    case 0:
      return "Success";
    case 3:
      return "Not Supported";
    case 9:
      return "Driver Not Loaded";
    case 15:
      return "GPU is lost";
    default:
      return "Fake NVML error";
  }
}
#endif

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!gInitialized) return NVML_ERROR_UNINITIALIZED;
  if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  FakeState s;
  loadState(&s);
  if (s.count.code != NVML_SUCCESS) return s.count.code;
  *count = (unsigned int)s.count.value;
  return NVML_SUCCESS;
}

#ifndef PI0_FAKE_NVML_BROKEN
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (!gInitialized) return NVML_ERROR_UNINITIALIZED;
  FakeState s;
  loadState(&s);
  if (device == NULL || index >= (unsigned int)s.gpus) return NVML_ERROR_INVALID_ARGUMENT;
  if (s.gpu[index].handle.code != NVML_SUCCESS) return s.gpu[index].handle.code;
  *device = &gHandles[index];
  return NVML_SUCCESS;
}
#endif

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (strlen(g->name) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(name, g->name, strlen(g->name) + 1);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (strlen(g->uuid) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  memcpy(uuid, g->uuid, strlen(g->uuid) + 1);
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* memory) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (g->memTotal.code != NVML_SUCCESS) return g->memTotal.code;
  if (g->memUsed.code != NVML_SUCCESS) return g->memUsed.code;
  memory->total = g->memTotal.value;
  memory->used = g->memUsed.value;
  memory->free = g->haveMemFree ? g->memFree.value : g->memTotal.value - g->memUsed.value;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device,
                                                       nvmlUtilization_t* utilization) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (g->util.code != NVML_SUCCESS) return g->util.code;
  utilization->gpu = (unsigned int)g->util.value;
  utilization->memory = 0;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor,
                                                  unsigned int* celsius) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
  if (g->temp.code != NVML_SUCCESS) return g->temp.code;
  *celsius = (unsigned int)g->temp.value;
  return NVML_SUCCESS;
}

#ifndef PI0_FAKE_NVML_PARTIAL
FAKE_EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* milliwatts) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (g->powerMw.code != NVML_SUCCESS) return g->powerMw.code;
  *milliwatts = (unsigned int)g->powerMw.value;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceGetComputeMode(nvmlDevice_t device, int* mode) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (g->computeMode.code != NVML_SUCCESS) return g->computeMode.code;
  *mode = (int)g->computeMode.value;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlEventSetCreate(nvmlEventSet_t* set) {
  if (!gInitialized) return NVML_ERROR_UNINITIALIZED;
  FakeState s;
  loadState(&s);
  if (s.eventCreate.code != NVML_SUCCESS) return s.eventCreate.code;
  ++gEventSetCreates;
  memset(&gEventSet, 0, sizeof(gEventSet));
  *set = &gEventSet;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlDeviceRegisterEvents(nvmlDevice_t device,
                                                  unsigned long long eventTypes,
                                                  nvmlEventSet_t set) {
  FakeState s;
  FakeGpu* g = NULL;
  nvmlReturn_t r = gpuOf(device, &s, &g);
  if (r != NVML_SUCCESS) return r;
  if (set != &gEventSet || eventTypes != NVML_EVENT_TYPE_XID_CRITICAL_ERROR) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  if (g->events.code != NVML_SUCCESS) return g->events.code;
  /* Like the driver, only errors after the registration are delivered. */
  gDelivered[device->index] = g->xid.code == NVML_SUCCESS ? g->xid.value : 0;
  set->registered[device->index] = 1;
  return NVML_SUCCESS;
}

FAKE_EXPORT nvmlReturn_t nvmlEventSetWait_v2(nvmlEventSet_t set, nvmlEventData_t* data,
                                             unsigned int timeoutMs) {
  gLastWaitTimeout = (int)timeoutMs; /* never blocks, whatever the timeout */
  if (!gInitialized) return NVML_ERROR_UNINITIALIZED;
  if (set != &gEventSet || data == NULL) return NVML_ERROR_INVALID_ARGUMENT;
  FakeState s;
  loadState(&s);
  for (int i = 0; i < s.gpus; ++i) {
    if (!set->registered[i]) continue;
    const FakeGpu* g = &s.gpu[i];
    if (g->xid.code != NVML_SUCCESS) return g->xid.code;
    if (g->xid.value > gDelivered[i]) {
      ++gDelivered[i];
      memset(data, 0, sizeof(*data));
      data->device = &gHandles[i];
      data->eventType = NVML_EVENT_TYPE_XID_CRITICAL_ERROR;
      data->eventData = g->xidCode.value;
      return NVML_SUCCESS;
    }
  }
  return NVML_ERROR_TIMEOUT;
}

FAKE_EXPORT nvmlReturn_t nvmlEventSetFree(nvmlEventSet_t set) {
  if (set != &gEventSet) return NVML_ERROR_INVALID_ARGUMENT;
  memset(&gEventSet, 0, sizeof(gEventSet));
  return NVML_SUCCESS;
}
#endif
