#include "capi/translate.h"

#include "content/manifest.h"
#include "content/pccrc.h"
#include "content/publication.h"
#include "platform/file.h"
#include "util/hex.h"
#include "util/key_file.h"

#include <peerdist/content.h>

#include <sodium.h>

#include <cstring>

struct pd_publication {
    pd::content::publication p;
    pd_content_id id;
};

using namespace pd::capi;

static pd_manifest *wrap(pd::content::manifest m) {
    auto out = new pd_manifest{std::move(m), {}};
    std::memcpy(out->id.bytes, out->m.id.data(), 32);
    return out;
}

static pd::content::hash to_hash(const pd_content_id *id) {
    pd::content::hash h;
    std::memcpy(h.data(), id->bytes, 32);
    return h;
}

constexpr std::size_t max_manifest_file = 256u << 20;

template <std::size_t N>
static void copy_text(char (&dst)[N], const std::string &src) {
    std::strncpy(dst, src.c_str(), N - 1);
    dst[N - 1] = '\0';
}

extern "C" {

PD_API int pd_manifest_hash_file(pd_manifest **out, const char *path, const char *name) {
    return guard([&] {
        require(out, "out");
        *out = nullptr;
        require(path, "path");
        pd::crypto::ensure_initialised();
        *out = wrap(pd::content::hash_file(path, name ? name : ""));
        return PD_OK;
    });
}

PD_API int pd_manifest_parse(pd_manifest **out, const void *data, size_t len) {
    return guard([&] {
        require(out, "out");
        *out = nullptr;
        if (!data && len) misuse("data is NULL");
        *out = wrap(pd::content::manifest::parse(data, len));
        return PD_OK;
    });
}

PD_API int pd_manifest_read_file(pd_manifest **out, const char *path) {
    return guard([&] {
        require(out, "out");
        *out = nullptr;
        require(path, "path");
        auto bytes = pd::platform::read_small_file(path, max_manifest_file);
        try {
            *out = wrap(pd::content::manifest::parse(bytes.data(), bytes.size()));
        } catch (const pd::error &e) {
            pd::fail(e.code(), e.category(), std::string("'") + path + "': " + e.what());
        }
        return PD_OK;
    });
}

PD_API int pd_manifest_serialize(pd_buf *out, const pd_manifest *manifest) {
    return guard([&] {
        require(manifest, "manifest");
        auto bytes = manifest->m.serialize();
        fill_buf(out, bytes.data(), bytes.size());
        return PD_OK;
    });
}

PD_API int pd_manifest_write_file(const pd_manifest *manifest, const char *path) {
    return guard([&] {
        require(manifest, "manifest");
        require(path, "path");
        auto bytes = manifest->m.serialize();
        pd::platform::write_file_atomic(path, bytes.data(), bytes.size());
        return PD_OK;
    });
}

PD_API void pd_manifest_free(pd_manifest *manifest) { delete manifest; }

PD_API const pd_content_id *pd_manifest_id(const pd_manifest *m) { return m ? &m->id : nullptr; }
PD_API uint64_t pd_manifest_size(const pd_manifest *m) { return m ? m->m.size : 0; }
PD_API const char *pd_manifest_name(const pd_manifest *m) { return m ? m->m.name.c_str() : nullptr; }
PD_API uint32_t pd_manifest_block_size(const pd_manifest *m) { return m ? m->m.block_size : 0; }
PD_API uint64_t pd_manifest_block_count(const pd_manifest *m) { return m ? m->m.block_count() : 0; }

PD_API int pd_publish_options_init(pd_publish_options *opts, uint32_t version) {
    const pd_publish_options defaults = PD_PUBLISH_OPTIONS_INIT;
    static_assert(PD_PUBLISH_OPTIONS_VERSION == 1, "list the new version's struct size");
    return init_options(opts, version, defaults, {sizeof(pd_publish_options)}, "pd_publish_options");
}

PD_API int pd_content_publish(pd_manifest **out, pd_session *session, const char *path, const pd_publish_options *opts) {
    return guard([&] {
        auto &s = checked(session);
        if (out) *out = nullptr;
        require(path, "path");
        pd_publish_options o = PD_PUBLISH_OPTIONS_INIT;
        if (opts) {
            if (opts->version == 0 || opts->version > PD_PUBLISH_OPTIONS_VERSION)
                pd::fail(PD_E_VERSION, PD_CATEGORY_API, "pd_publish_options version is newer than this library");
            o = *opts;
        }
        auto m = s.publish(path, o.name ? o.name : "", o.origin ? o.origin : "", o.add_to_cache != 0);
        if (out) *out = wrap(std::move(m));
        return PD_OK;
    });
}

PD_API int pd_content_import(pd_session *session, const pd_manifest *manifest, const char *origin) {
    return guard([&] {
        auto &s = checked(session);
        require(manifest, "manifest");
        s.import_content(manifest->m, origin ? origin : "", nullptr, 0);
        return PD_OK;
    });
}

PD_API int pd_content_import_published(pd_session *session, const pd_manifest *manifest, const char *origin,
                                       const void *record, size_t record_len) {
    return guard([&] {
        auto &s = checked(session);
        require(manifest, "manifest");
        require(record, "record");
        s.import_content(manifest->m, origin ? origin : "", static_cast<const std::uint8_t *>(record), record_len);
        return PD_OK;
    });
}

PD_API int pd_content_import_with_record_file(pd_session *session, const pd_manifest *manifest, const char *origin,
                                              const char *manifest_path, const char *publication_path) {
    return guard([&] {
        auto &s = checked(session);
        require(manifest, "manifest");
        auto record = pd::content::read_record_file(publication_path ? publication_path : "", manifest_path ? manifest_path : "");
        if (!record) {
            s.import_content(manifest->m, origin ? origin : "", nullptr, 0);
            return PD_OK;
        }
        s.import_content(manifest->m, origin ? origin : "", reinterpret_cast<const std::uint8_t *>(record->data()), record->size());
        return PD_OK;
    });
}

PD_API int pd_content_resolve(pd_session *session, const pd_content_id *id) {
    return guard([&] {
        auto &s = checked(session);
        require(id, "id");
        s.resolve_content(to_hash(id));
        return PD_OK;
    });
}

PD_API int pd_content_import_from_origin(pd_content_id *out, pd_session *session, const char *origin, const char *name) {
    return guard([&] {
        auto &s = checked(session);
        require(out, "out");
        require(origin, "origin");
        auto id = s.import_from_origin(origin, name ? name : "");
        std::memcpy(out->bytes, id.data(), id.size());
        return PD_OK;
    });
}

PD_API int pd_content_export(pd_manifest **out, pd_session *session, const pd_content_id *id) {
    return guard([&] {
        auto &s = checked(session);
        require(out, "out");
        *out = nullptr;
        require(id, "id");
        auto m = s.store().manifest(to_hash(id));
        if (!m) pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content is not known to this session");
        *out = wrap(*m);
        return PD_OK;
    });
}

PD_API int pd_publisher_key_create_file(uint8_t public_key[32], const char *path) {
    return guard([&] {
        require(public_key, "public_key");
        require(path, "path");
        std::uint8_t seed[32], secret[64];
        randombytes_buf(seed, sizeof seed);
        crypto_sign_seed_keypair(public_key, secret, seed);
        auto text = pd::to_hex(seed, sizeof seed) + "\n";
        sodium_memzero(seed, sizeof seed);
        sodium_memzero(secret, sizeof secret);
        pd::platform::write_file_atomic(path, text.data(), text.size(), pd::platform::access::owner_only);
        sodium_memzero(text.data(), text.size());
        return PD_OK;
    });
}

PD_API int pd_publisher_key_read_file(uint8_t public_key[32], uint8_t secret_key[64], const char *path) {
    return guard([&] {
        require(public_key, "public_key");
        require(secret_key, "secret_key");
        require(path, "path");
        auto seed = pd::read_secret_key(path, "publisher key file");
        crypto_sign_seed_keypair(public_key, secret_key, seed.data());
        sodium_memzero(seed.data(), seed.size());
        return PD_OK;
    });
}

PD_API int pd_publication_read_file(pd_buf *out, const char *path) {
    return guard([&] {
        require(out, "out");
        require(path, "path");
        auto bytes = pd::platform::read_small_file(path, pd::content::max_record_file_bytes);
        fill_buf(out, bytes.data(), bytes.size());
        return PD_OK;
    });
}

PD_API int pd_publisher_keygen(uint8_t public_key[32], uint8_t secret_key[64]) {
    return guard([&] {
        require(public_key, "public_key");
        require(secret_key, "secret_key");
        pd::crypto::ed25519_keypair(public_key, secret_key);
        return PD_OK;
    });
}

PD_API int pd_publication_sign(pd_buf *out, const pd_manifest *manifest, const char *origin, int64_t published_ms,
                               const uint8_t secret_key[64]) {
    return guard([&] {
        require(out, "out");
        require(manifest, "manifest");
        require(secret_key, "secret_key");
        pd::content::publication p;
        p.id = manifest->m.id;
        p.size = manifest->m.size;
        p.name = manifest->m.name;
        p.origin = origin ? origin : "";
        p.published_ms = published_ms;
        auto bytes = p.sign(secret_key);
        fill_buf(out, bytes.data(), bytes.size());
        return PD_OK;
    });
}

PD_API int pd_publication_verify(pd_publication **out, const void *data, size_t len, const uint8_t trusted_public_key[32]) {
    return guard([&] {
        require(out, "out");
        *out = nullptr;
        require(trusted_public_key, "trusted_public_key");
        if (!data && len) misuse("data is NULL");
        auto p = pd::content::publication::verify(data, len, trusted_public_key);
        auto rec = new pd_publication{std::move(p), {}};
        std::memcpy(rec->id.bytes, rec->p.id.data(), 32);
        *out = rec;
        return PD_OK;
    });
}

PD_API void pd_publication_free(pd_publication *record) { delete record; }
PD_API const pd_content_id *pd_publication_id(const pd_publication *r) { return r ? &r->id : nullptr; }
PD_API const char *pd_publication_name(const pd_publication *r) { return r ? r->p.name.c_str() : nullptr; }
PD_API const char *pd_publication_origin(const pd_publication *r) { return r ? r->p.origin.c_str() : nullptr; }
PD_API uint64_t pd_publication_size(const pd_publication *r) { return r ? r->p.size : 0; }
PD_API int64_t pd_publication_time(const pd_publication *r) { return r ? r->p.published_ms : 0; }

PD_API int pd_content_info_generate(pd_buf *out, const char *path, uint32_t version, const uint8_t *passphrase,
                                    size_t passphrase_len) {
    return guard([&] {
        require(out, "out");
        require(path, "path");
        if (!passphrase && passphrase_len) misuse("passphrase is NULL");
        namespace pc = pd::content::pccrc;
        std::vector<std::uint8_t> bytes;
        if (version == 1) bytes = pc::generate_v1(path, pc::v1_server_secret(passphrase, passphrase_len)).serialize();
        else if (version == 2) bytes = pc::generate_v2(path, pc::v2_server_secret(passphrase, passphrase_len)).serialize();
        else pd::fail(PD_E_UNSUPPORTED, PD_CATEGORY_CONTENT, "Content Information version " + std::to_string(version) + " (use 1 or 2)");
        fill_buf(out, bytes.data(), bytes.size());
        return PD_OK;
    });
}

PD_API int pd_cache_list(pd_session *session, pd_cache_entry *entries, size_t entry_size, size_t *count) {
    return guard([&] {
        auto &s = checked(session);
        require(count, "count");
        auto all = s.store().list();
        std::size_t capacity = *count;
        *count = all.size();
        if (!entries) return PD_OK;
        if (entry_size < sizeof(std::uint32_t)) misuse("entry_size is too small");
        if (capacity < all.size()) pd::fail(PD_E_BUFS, PD_CATEGORY_API, "cache entry array too small");
        for (std::size_t i = 0; i < all.size(); ++i) {
            auto &r = all[i];
            pd_cache_entry e{};
            e.struct_size = sizeof e;
            e.state = static_cast<std::uint32_t>(r.state);
            std::memcpy(e.id.bytes, r.id.data(), 32);
            e.size = r.size;
            e.bytes_verified = r.verified_bytes;
            e.bytes_on_disk = r.bytes_on_disk;
            e.pinned = r.pinned;
            e.last_used_ms = r.last_used_ms;
            copy_text(e.name, r.name);
            auto dst = reinterpret_cast<pd_cache_entry *>(reinterpret_cast<char *>(entries) + i * entry_size);
            dst->struct_size = static_cast<std::uint32_t>(std::min(entry_size, sizeof e));
            copy_sized(dst, e);
        }
        return PD_OK;
    });
}

PD_API int pd_cache_remove(pd_session *session, const pd_content_id *id) {
    return guard([&] {
        auto &s = checked(session);
        require(id, "id");
        s.remove_content(to_hash(id));
        return PD_OK;
    });
}

PD_API int pd_content_set_branchcache_info(pd_session *session, const pd_content_id *id, const uint8_t *info, size_t len) {
    return guard([&] {
        auto &s = checked(session);
        require(id, "id");
        require(info, "info");
        s.branchcache().set_info(to_hash(id), info, len);
        return PD_OK;
    });
}

PD_API int pd_cache_pin(pd_session *session, const pd_content_id *id, int pinned) {
    return guard([&] {
        auto &s = checked(session);
        require(id, "id");
        s.store().set_pinned(to_hash(id), pinned != 0);
        return PD_OK;
    });
}

PD_API int pd_cache_path(pd_buf *out, pd_session *session, const pd_content_id *id) {
    return guard([&] {
        auto &s = checked(session);
        require(out, "out");
        require(id, "id");
        auto rec = s.store().get(to_hash(id));
        if (!rec) pd::fail(PD_E_NOT_FOUND, PD_CATEGORY_STORE, "content is not in the cache");
        if (rec->state != pd::store::content_state::complete)
            pd::fail(PD_E_STATE, PD_CATEGORY_STORE, "content is not complete in the cache");
        auto path = s.store().data_path(rec->id);
        fill_buf(out, path.data(), path.size());
        return PD_OK;
    });
}

}  // extern "C"

PD_API const char *pd_cache_state_name(uint32_t state) {
    switch (state) {
    case PD_CACHE_KNOWN: return "known";
    case PD_CACHE_PARTIAL: return "partial";
    case PD_CACHE_COMPLETE: return "complete";
    default: return "unknown";
    }
}
