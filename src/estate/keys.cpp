// Ed25519 keys and signatures for the estate (libsodium), and where the estate keeps its files.
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "heirloom/error.h"
#include "heirloom/estate.h"

namespace heirloom::estate {

namespace {

void init_sodium() {
  static const bool ok = sodium_init() >= 0;
  if (!ok) throw Error("libsodium could not be initialised", "the system's random source may be unavailable");
}

constexpr const char* kKeyHeader = "heirloom ed25519 secret key v1";

}  // namespace

std::string data_dir() {
  if (const char* d = std::getenv("HEIRLOOM_DATA"); d && *d) return d;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/heirloom";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/heirloom";
}
std::string default_registry_path() { return data_dir() + "/estate.db"; }
std::string default_key_dir() { return data_dir() + "/keys"; }

std::string to_hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) s[2 * i] = d[p[i] >> 4], s[2 * i + 1] = d[p[i] & 15];
  return s;
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  const auto val = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw Error("expected hexadecimal digits, found '" + std::string(1, c) + "'");
  };
  if (hex.size() % 2) throw Error("expected an even number of hexadecimal digits, found " + std::to_string(hex.size()));
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = (uint8_t)(val(hex[2 * i]) << 4 | val(hex[2 * i + 1]));
  return out;
}

KeyPair generate_key() {
  init_sodium();
  KeyPair k;
  crypto_sign_keypair(k.public_key.data(), k.secret_key.data());
  return k;
}

void save_secret_key(const KeyPair& k, const std::string& path) {
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  // Written whole under a private name, then linked to its name: a kill leaves no half key, and link()
  // never replaces an existing key (its owner's signatures would stop verifying).
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error("cannot create the key file " + path + ": " + std::strerror(errno), "check the folder");
  const std::string text = std::string(kKeyHeader) + "\n" + to_hex(k.secret_key.data(), k.secret_key.size()) + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == (ssize_t)text.size() && ::fsync(fd) == 0;
  ::close(fd);
  const int linked = ok ? ::link(tmp.c_str(), path.c_str()) : -1;
  const int err = errno;
  ::unlink(tmp.c_str());
  if (!ok) throw Error("cannot write the key file " + path, "check the free space");
  if (linked != 0)
    throw Error("cannot create the key file " + path + ": " + std::strerror(err),
                err == EEXIST ? "a key with this name exists already; keep it, or choose another --key" : "check the folder");
}

KeyPair load_secret_key(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read the key file " + path, "pass --key FILE, or add the person first (heirloom estate person add NAME)");
  std::string header, hex;
  std::getline(in, header);
  std::getline(in, hex);
  if (header != kKeyHeader || hex.size() != 128)
    throw Error(path + ": not a heirloom secret key (expected \"" + kKeyHeader + "\" and 128 hex digits)",
                "use the file `heirloom estate person add` wrote");
  const std::vector<uint8_t> sk = from_hex(hex);
  KeyPair k;
  std::copy(sk.begin(), sk.end(), k.secret_key.begin());
  init_sodium();
  if (crypto_sign_ed25519_sk_to_pk(k.public_key.data(), k.secret_key.data()) != 0)
    throw Error(path + ": the secret key is malformed");
  return k;
}

std::string sign_hex(const KeyPair& k, const std::string& message) {
  init_sodium();
  std::array<uint8_t, crypto_sign_BYTES> sig{};
  crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(message.data()), message.size(), k.secret_key.data());
  return to_hex(sig.data(), sig.size());
}

bool verify_hex(const std::string& public_key_hex, const std::string& message, const std::string& signature_hex) {
  init_sodium();
  if (public_key_hex.size() != 2 * crypto_sign_PUBLICKEYBYTES || signature_hex.size() != 2 * crypto_sign_BYTES) return false;
  std::vector<uint8_t> pk, sig;
  try {
    pk = from_hex(public_key_hex);
    sig = from_hex(signature_hex);
  } catch (const Error&) {
    return false;
  }
  return crypto_sign_verify_detached(sig.data(), reinterpret_cast<const uint8_t*>(message.data()), message.size(), pk.data()) == 0;
}

}  // namespace heirloom::estate
