// The fleet key as a file holds it — one rule for the agent, `pd`, `pd-coordinator` and the
// hierarchy plugin: 64 hexadecimal digits of a random key (as `pd-coordinator init
// --key-out` writes them), surrounding whitespace allowed, in a file only its owner can read.
//
// Why only random keys: the secure channel's handshake (docs/protocol.md §1) lets whoever
// completes it with a party — a device it connected to, a server it answered — test key
// guesses offline. Against a 256-bit random key that is hopeless; against a human-chosen
// one it is not (0.6 M guesses/s on one core). So text that could be a passphrase (the old
// "32 raw bytes" form), and keys with visibly little randomness, are refused.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

namespace pd {

using fleet_key = std::array<std::uint8_t, 32>;

// nullopt when `text` is not 64 hex digits of a key that looks random (at least 16
// distinct byte values among its 32: a random key has about 30; "00 00 …" or a repeated
// word has a handful).
std::optional<fleet_key> parse_fleet_key(const std::string &text);

// Reads and parses a key file. Throws pd::error: PD_E_NOT_FOUND / PD_E_IO when it cannot be
// read, PD_E_INVALID (naming the path and the rule) when it holds anything else or when
// other users can read or change it.
fleet_key read_fleet_key(const std::string &path);
// The same rules for any file holding 32 random secret bytes (a publisher's Ed25519 seed):
// `what` names the file in errors ("publisher key file").
fleet_key read_secret_key(const std::string &path, const std::string &what);

// An administrator's credential file (docs/coordinator.md "Administrators"): the Ed25519
// key the administrator signs with, and the coordinator's public key it trusts — without
// the second, anyone on the path could pose as the coordinator. Text, owner-only:
//
//   # any comment
//   admin_key = <64 hex digits: the Ed25519 seed, random>
//   coordinator_key = <64 hex digits: the coordinator's Ed25519 public key>
struct admin_credential {
    std::array<std::uint8_t, 32> admin_seed{};
    std::array<std::uint8_t, 32> coordinator_key{};
};

// Throws PD_E_INVALID naming the line and the rule: each name exactly once, nothing else.
admin_credential parse_admin_credential(const std::string &text);
// The file's text for `c`, with `comment` as its first line.
std::string format_admin_credential(const admin_credential &c, const std::string &comment);
// Reads and parses a credential file (4 KiB at most, owner-only), as read_fleet_key.
admin_credential read_admin_credential(const std::string &path);

}  // namespace pd
