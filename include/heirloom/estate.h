// The estate registry (issue 9): people with their ed25519 public keys, the adapters they own (each file
// kept whole in the registry, addressed by the sha256 of its bytes and signed by its owner), the lineage
// of inherited adapters, and the successors each owner has designated (signed too). One SQLite file; every
// write is one transaction, so a crash at any point leaves the registry as it was before or after it.
//
// Consent: an adapter can be inherited through the registry only by a successor its owner designated,
// and only while its bytes, its owner's signature and the designation's signature all verify.
#pragma once
#include <nlohmann/json.hpp>
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace heirloom::estate {

// $HEIRLOOM_DATA, else $XDG_DATA_HOME/heirloom, else ~/.local/share/heirloom.
std::string data_dir();
std::string default_registry_path();  // data_dir()/estate.db
std::string default_key_dir();        // data_dir()/keys (one secret key per person, mode 0600)
// A registry is a SQLite file, or a PostgreSQL server's database named by a URL (postgresql://...)
// that many machines share. Is there one at `location` (a file that exists, or any URL)?
bool registry_location_given(const std::string& location);
// A person's name is 1-64 letters, digits, '-', '_' or '.' (it also names their key file); Error otherwise.
void check_person_name(const std::string& name);

// ---- keys and signatures (libsodium ed25519) ----
struct KeyPair {
  std::array<uint8_t, 32> public_key{};
  std::array<uint8_t, 64> secret_key{};
};
KeyPair generate_key();
// Writes the secret key (which holds the public one) to a new file readable by its owner only; refuses to
// overwrite an existing key.
void save_secret_key(const KeyPair& k, const std::string& path);
KeyPair load_secret_key(const std::string& path);  // Error when missing, unreadable or malformed
std::string to_hex(const uint8_t* p, size_t n);
std::vector<uint8_t> from_hex(const std::string& hex);  // Error unless even-length hex
std::string sign_hex(const KeyPair& k, const std::string& message);
bool verify_hex(const std::string& public_key_hex, const std::string& message, const std::string& signature_hex);

// ---- records ----
struct Person {
  std::string name, public_key, created;  // public_key as hex
};

struct AdapterRecord {
  std::string id;             // sha256 of the file's bytes
  std::string owner, kind, base_fingerprint;
  std::string params_sha256;  // the adapter's own content checksum (what lineage refers to)
  int64_t bytes = 0;
  std::string created;        // when it was trained (from the file)
  std::string added;          // when it entered the registry
  std::string recipe;         // JSON: steps, batch, seq, lr, tokens, seed
  std::string label;
  int generation = 0;
  std::string signature;      // owner's, hex
};

struct LineageRecord {
  std::string heir;                            // adapter id
  std::string parent_sha256, child_sha256;     // params checksums, as the heir's file records them
  std::string parent, child;                   // their registry ids, when they are in the registry
  std::string parent_owner, child_owner;
  std::string scheme, params, regime;
  double overlap = 0;
  int generation = 0;
};

struct Designation {
  std::string adapter, owner, successor, created, signature;
};

// What a fleet run trained (issue 10): a person's adapter and the exact inputs it came from. A person is
// current when a training with the same text, base and recipe is recorded; a changed text is trained again.
struct TrainingKey {
  std::string person, text_sha256, base_fingerprint, recipe;  // recipe: canonical JSON of the settings
};
struct TrainingRecord {
  TrainingKey key;
  std::string adapter;   // registry id
  std::string report;    // JSON: perplexities before and after, seconds
  std::string finished;  // when it was committed
};

struct VerifyReport {
  int adapters = 0, designations = 0;
  std::vector<std::string> problems;  // empty when everything verifies
  bool ok() const { return problems.empty(); }
};

// The exact bytes each signature covers.
std::string adapter_message(const AdapterRecord& r);
std::string designation_message(const Designation& d);

class Registry {
 public:
  // Creates the file and schema when missing (estate init); opening an existing registry is harmless.
  static Registry create(const std::string& path);
  // Error with a hint to run `heirloom estate init` when the file does not exist or is not a registry.
  static Registry open(const std::string& path);
  Registry(Registry&&) noexcept;
  Registry& operator=(Registry&&) noexcept;
  ~Registry();
  const std::string& path() const;

  Person add_person(const std::string& name, const std::string& public_key_hex);
  // Stores an adapter file for its owner, signed with the owner's key (which must be the one registered).
  // The owner is the file's unless `owner` is given. Adding the same bytes again returns the stored record.
  AdapterRecord add_adapter(const std::vector<uint8_t>& file, const KeyPair& key, const std::string& owner = "",
                            const std::string& label = "");
  // The owner names a successor for one adapter.
  Designation designate(const std::string& adapter_id, const std::string& successor, const KeyPair& owner_key);

  std::vector<Person> people() const;
  std::optional<Person> person(const std::string& name) const;
  std::vector<AdapterRecord> adapters(const std::string& owner = "") const;  // newest first
  // An adapter by id, unique id prefix (at least 6 hex digits), or a person's name (their newest adapter).
  AdapterRecord resolve(const std::string& id_prefix_or_owner) const;
  std::optional<AdapterRecord> by_params_sha256(const std::string& sha) const;
  std::vector<uint8_t> file(const std::string& id) const;
  std::optional<LineageRecord> lineage(const std::string& id) const;
  std::vector<LineageRecord> heirs_of(const std::string& id) const;  // adapters inherited from this one
  std::vector<Designation> designations(const std::string& adapter_id = "") const;

  // ---- fleet trainings ----
  std::optional<TrainingRecord> training(const TrainingKey& k) const;
  std::vector<TrainingRecord> trainings(const std::string& person = "") const;  // oldest first
  // In ONE transaction: the person (added with the key's public key when missing; refused when registered
  // with another key), the adapter, and the training record. When the same training is recorded already
  // (another worker finished it first) nothing is written and `*fresh` is false.
  TrainingRecord commit_training(const TrainingKey& k, const std::vector<uint8_t>& adapter_file, const KeyPair& key,
                                 const std::string& report_json, bool* fresh = nullptr);

  // Checks every adapter (bytes hash to the id, the stored checksum holds, the owner's signature) and every
  // designation, or only those of one adapter.
  VerifyReport verify(const std::string& adapter_id = "") const;
  // The adapter's file, once consent and integrity hold: `successor` is designated by the owner, and the
  // adapter and designation verify. Error saying which does not hold otherwise.
  std::vector<uint8_t> file_for_inheritance(const std::string& adapter_id, const std::string& successor) const;

 private:
  struct Impl;
  explicit Registry(std::unique_ptr<Impl> impl);
  static Registry checked(std::unique_ptr<Impl> impl, const std::string& location);
  // The parts of the writes above, inside a transaction the caller holds.
  Person insert_person(const std::string& name, const std::string& public_key_hex);
  AdapterRecord insert_adapter(const std::vector<uint8_t>& file, const KeyPair& key, const std::string& owner,
                               const std::string& label);
  std::unique_ptr<Impl> impl_;
};

// A record as JSON (the recipe parsed), and an adapter's ancestry as nested JSON: each heir names its
// parent (the estate) and child (the successor's own adapter), as far back as the registry holds them.
nlohmann::json to_json(const AdapterRecord& r);
nlohmann::json ancestry(const Registry& reg, const AdapterRecord& r, int depth = 0);

}  // namespace heirloom::estate
