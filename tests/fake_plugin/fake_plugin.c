/*
 * One source, many fake plugins (Vulkan-Loader's approach): compile definitions switch
 * what is exported, to test the loader against old, new, broken and hostile plugins.
 * The "good" variant is a working backend serving content from memory: bytes are
 * derived from the offset, so tests can publish the same bytes from a real file.
 */
#include <peerdist/sys/plugin.h>

#include <stdlib.h>
#include <string.h>

/* Some variants leave out a hook or the entry point on purpose: what they do not use is fine. */
#if defined(__GNUC__)
#define FAKE_MAYBE_UNUSED __attribute__((unused))
#else
#define FAKE_MAYBE_UNUSED
#endif

#ifndef FAKE_ABI_MIN
#define FAKE_ABI_MIN 1
#endif
#ifndef FAKE_ABI_MAX
#define FAKE_ABI_MAX 1
#endif

typedef struct fake {
    const pd_host_api *host;
} fake;

static FAKE_MAYBE_UNUSED int32_t PD_CALLBACK fake_create(void **self, const pd_host_api *host, const char *config) {
    fake *f;
    (void)config;
#ifdef FAKE_CREATE_FAILS
    (void)self;
    (void)host;
    (void)f;
    return -1;
#else
    f = (fake *)calloc(1, sizeof *f);
    if (!f) return PD_PLUGIN_E_GENERIC;
    f->host = host;
    host->log(host->host, 2, "fake plugin " FAKE_NAME " created");
    *self = f;
    return PD_PLUGIN_OK;
#endif
}

static void PD_CALLBACK fake_destroy(void *self) { free(self); }

/* The fake serves only origins of the form "fake:<anything>"; byte i is (i * 7 + 3) & 0xff. */
static FAKE_MAYBE_UNUSED int32_t PD_CALLBACK fake_open(void *self, void **stream, const pd_content_ref *ref, char *msg, size_t n) {
    (void)self;
    if (!ref->origin || strncmp(ref->origin, "fake:", 5) != 0) {
        if (msg && n) strncpy(msg, "not a fake: origin", n - 1);
        return PD_PLUGIN_E_NOT_FOUND;
    }
    *stream = (void *)(uintptr_t)ref->size;
    return PD_PLUGIN_OK;
}

static FAKE_MAYBE_UNUSED int32_t PD_CALLBACK fake_read(void *self, void *stream, uint64_t offset, void *buffer, size_t length,
                                     size_t *read, char *msg, size_t n) {
    uint64_t size = (uint64_t)(uintptr_t)stream;
    size_t i;
    (void)self;
    (void)msg;
    (void)n;
    if (offset > size) return PD_PLUGIN_E_INVALID;
    if (length > size - offset) length = (size_t)(size - offset);
    for (i = 0; i < length; ++i) ((unsigned char *)buffer)[i] = (unsigned char)(((offset + i) * 7 + 3) & 0xff);
    *read = length;
    return PD_PLUGIN_OK;
}

static FAKE_MAYBE_UNUSED void PD_CALLBACK fake_close(void *self, void *stream) {
    (void)self;
    (void)stream;
}

#ifdef FAKE_OLD_VTABLE
/* What a plugin compiled against an older, smaller vtable looks like. */
typedef struct old_vtable {
    uint32_t struct_size;
    uint32_t source_class;
    int32_t(PD_CALLBACK *create)(void **, const pd_host_api *, const char *);
    void(PD_CALLBACK *destroy)(void *);
} old_vtable;
static const old_vtable vtable = {sizeof(old_vtable), 3, fake_create, fake_destroy};
#elif defined(FAKE_OVERSIZED)
/* A newer plugin whose vtable has hooks this host does not know yet. */
typedef struct big_vtable {
    pd_backend_vtable base;
    void *future_hooks[16];
} big_vtable;
static const big_vtable vtable_big = {
    {sizeof(big_vtable), 3, fake_create, fake_destroy, fake_open, fake_read, fake_close, NULL, NULL, NULL, NULL, NULL, NULL, NULL}, {0}};
#define vtable (vtable_big.base)
#else
static FAKE_MAYBE_UNUSED const pd_backend_vtable vtable = {
    sizeof(pd_backend_vtable), 3,
#ifdef FAKE_MISSING_CREATE
    NULL,
#else
    fake_create,
#endif
    fake_destroy, fake_open, fake_read, fake_close, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
#endif

static const pd_backend_vtable *PD_CALLBACK fake_backend(uint32_t abi_version) {
#ifdef FAKE_REFUSE
    (void)abi_version;
    return NULL;
#else
    if (abi_version < FAKE_ABI_MIN || abi_version > FAKE_ABI_MAX) return NULL;
    return (const pd_backend_vtable *)&vtable;
#endif
}

#ifdef FAKE_OVERSIZED
typedef struct big_descriptor {
    pd_plugin_descriptor base;
    const char *future_fields[8];
} big_descriptor;
static const big_descriptor descriptor_big = {
    {sizeof(big_descriptor), FAKE_ABI_MAX, FAKE_ABI_MIN, 0, FAKE_NAME, "1.0", "Apache-2.0", "oversized structs",
     fake_backend},
    {0}};
#define descriptor (descriptor_big.base)
#else
static FAKE_MAYBE_UNUSED const pd_plugin_descriptor descriptor = {
    sizeof(pd_plugin_descriptor), FAKE_ABI_MAX, FAKE_ABI_MIN, 0,
#ifdef FAKE_BAD_NAME
    "Bad Name!",
#else
    FAKE_NAME,
#endif
    "1.0", "Apache-2.0", "fake plugin for loader tests", fake_backend};
#endif

#ifndef FAKE_NO_ENTRY
PD_PLUGIN_EXPORT const pd_plugin_descriptor *pd_plugin_describe(void) { return &descriptor; }
#else
PD_PLUGIN_EXPORT int not_the_entry_point(void) { return 42; }
#endif
