// Who may do what on the coordinator (docs/coordinator.md "Devices" and "Administrators"):
// the administrators' "auth" and the devices' "identify", each an Ed25519 proof over the
// connection's transcript; the check every request passes before it is answered; and the
// audit line of each admin operation. The server's network side and its answers are in
// server.cpp.
#include "coordinator/server.h"

#include "coordinator/request_fields.h"
#include "crypto/hash.h"
#include "util/hex.h"

namespace pd::coord {

using namespace fields;

json server::authenticate(const json &request, const std::array<std::uint8_t, 32> &transcript, const std::string &ip,
                          std::string &admin_key) {
    auto refuse = [&](const std::string &why) {
        options_.audit("audit: auth refused from " + ip + ": " + why);
        return json{{"ok", false}, {"error", why}};
    };
    try {
        auto key = text(request, "key"), sig_hex = text(request, "signature");
        auto raw_key = from_hex(key);
        auto raw_sig = from_hex(sig_hex);
        signature sig{};
        if (!raw_key || raw_key->size() != 32 || !raw_sig || raw_sig->size() != sig.size())
            return refuse("'key' must be 64 and 'signature' 128 hex digits");
        std::copy(raw_sig->begin(), raw_sig->end(), sig.begin());
        key = to_hex(raw_key->data(), raw_key->size());  // one spelling (lowercase) for the lookup
        auto admin = store_.admin_by_key(key);
        if (!admin) return refuse("this key is not an administrator's");
        if (admin->revoked_ms) return refuse("administrator '" + admin->name + "' was revoked");
        if (!verify_transcript(signer::administrator, transcript, raw_key->data(), sig))
            return refuse("the signature does not verify (administrator '" + admin->name + "')");
        admin_key = key;
        auto mine = sign_transcript(signer::coordinator, transcript, options_.signing_key.data());
        options_.audit("audit: administrator '" + admin->name + "' (" + admin->role + ") authenticated from " + ip);
        return {{"ok", true}, {"name", admin->name}, {"role", admin->role}, {"server_signature", to_hex(mine.data(), mine.size())}};
    } catch (const std::exception &e) {
        return refuse(e.what());
    }
}

json server::identify(const json &request, const std::array<std::uint8_t, 32> &transcript, const caller &from,
                      std::string &device_id) {
    auto refuse = [&](const std::string &why) {
        options_.audit("audit: identify refused from " + from.ip + ": " + why);
        return json{{"ok", false}, {"error", why}};
    };
    try {
        if (!from.fleet_member) return refuse("'identify' is for fleet members: this connection did not prove the fleet key");
        auto id = required(request, "device_id");
        auto raw_key = from_hex(text(request, "key"));
        auto raw_sig = from_hex(text(request, "signature"));
        if (!raw_key || raw_key->size() != 32 || !raw_sig || raw_sig->size() != 64)
            return refuse("'key' must be 64 and 'signature' 128 hex digits");
        auto statement = device_statement(transcript);
        auto signed_message = crypto::device_signed_message(statement.data(), statement.size());
        if (!crypto::ed25519_verify(raw_sig->data(), signed_message.data(), signed_message.size(), raw_key->data()))
            return refuse("device " + id + ": the signature does not verify");
        auto key = to_hex(raw_key->data(), raw_key->size());
        auto known = identities_.find(id);
        bool enrolled = known == identities_.end();
        if (!enrolled) {
            if (known->second.revoked_ms) return refuse("device " + id + " was revoked");
            if (known->second.public_key != key)
                return refuse("device " + id + " is enrolled with another key (a copied device id, or a reinstalled device: revoke the old one)");
        } else {
            // Its first identify, under the fleet key: the key is the device's from now on.
            device_identity d{id, key, options_.now_ms(), 0};
            store_.enroll_device(d);
            identities_[id] = d;
            registry_.set_device_key(id, key);
            options_.audit("audit: device " + id + " enrolled from " + from.ip);
        }
        device_id = id;
        return {{"ok", true}, {"enrolled", enrolled}};
    } catch (const std::exception &e) {
        return refuse(e.what());
    }
}

std::optional<json> server::authorise(const json &request, const caller &from, std::string &who) {
    auto op_it = request.find("op");
    if (op_it == request.end() || !op_it->is_string()) return std::nullopt;  // answer() names the problem
    const auto &op = op_it->get_ref<const std::string &>();
    if (op.rfind("admin.", 0) != 0) {
        if (!from.fleet_member)
            return json{{"ok", false}, {"error", "'" + op + "' is for fleet members: this connection did not prove the fleet key"}};
        auto id_it = request.find("device_id");
        if (id_it == request.end() || !id_it->is_string()) return std::nullopt;  // answer() names the problem
        const auto &id = id_it->get_ref<const std::string &>();
        auto known = identities_.find(id);
        if (known != identities_.end() && known->second.revoked_ms)
            return json{{"ok", false}, {"error", "device " + id + " was revoked"}};
        if (!from.device_id.empty()) {
            if (id == from.device_id) return std::nullopt;
            return json{{"ok", false}, {"error", "this connection proved device " + from.device_id + "'s identity: it cannot speak for " + id}};
        }
        if (known != identities_.end())
            return json{{"ok", false}, {"error", "device " + id + " has an identity: prove it on this connection first (op 'identify')"}};
        if (options_.require_device_identity)
            return json{{"ok", false},
                        {"error", "'" + op + "' needs the device's identity (op 'identify', agents from 0.5 on); a coordinator "
                                  "upgrading a 0.4 fleet serves with --allow-unidentified-devices meanwhile"}};
        return std::nullopt;
    }
    auto admin = from.admin_key.empty() ? std::nullopt : store_.admin_by_key(from.admin_key);
    if (!admin)
        return json{{"ok", false},
                    {"error", "'" + op + "' needs an administrator's credential (op 'auth'); the fleet key does not authorise admin operations"}};
    who = "administrator '" + admin->name + "' (" + admin->role + ")";
    if (admin->revoked_ms) return json{{"ok", false}, {"error", "administrator '" + admin->name + "' was revoked"}};
    if (admin->role != role_name(admin_role::administrator) && !read_only_operation(op))
        return json{{"ok", false}, {"error", "administrator '" + admin->name + "' is a viewer: '" + op + "' changes the coordinator"}};
    return std::nullopt;
}

void server::audit(const std::string &who, const caller &from, const json &request, const json &reply) {
    auto op = request.value("op", json()).is_string() ? request.value("op", std::string()) : std::string("?");
    if (op.rfind("admin.", 0) != 0) return;
    ++counters_.admin_operations;
    std::string outcome = reply.value("ok", false) ? "ok" : "refused: " + reply.value("error", std::string());
    options_.audit("audit: " + (who.empty() ? std::string("unauthenticated") : who) + " from " + from.ip + ": " + op.substr(0, 64) +
                   " " + outcome.substr(0, 300));
}

}  // namespace pd::coord
