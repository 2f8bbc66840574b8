/* A stand-in for an old ONNX Runtime: it reports version 1.16.3 and provides C API versions
 * up to 16 only, like the real 1.16 releases. Built by the model package's tests. */
#include <stdint.h>
#include <stddef.h>

typedef struct {
	const void* (*GetApi)(uint32_t version);
	const char* (*GetVersionString)(void);
} OrtApiBase;

static const int api_table = 0;
static const void* get_api(uint32_t version) { return version <= 16 ? (const void*)&api_table : NULL; }
static const char* get_version(void) { return "1.16.3"; }
static const OrtApiBase base = { get_api, get_version };

const OrtApiBase* OrtGetApiBase(void) { return &base; }
