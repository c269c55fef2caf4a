// The estate registry on SQLite. See include/heirloom/estate.h.
// Durability: WAL journal with synchronous=FULL; each public write is one BEGIN IMMEDIATE transaction, and an
// adapter's file is a column of its row, so no row exists without its bytes and no bytes without their row.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/sha256.h"
#include "estate/registry_impl.h"
#include "heirloom/adapter.h"
#include "heirloom/error.h"
#include "heirloom/estate.h"

namespace heirloom::estate {

namespace {

constexpr int kSchemaVersion = 2;  // 2 added trainings (issue 10)

const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS people(
  name TEXT PRIMARY KEY, public_key TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS adapters(
  id TEXT PRIMARY KEY, owner TEXT NOT NULL REFERENCES people(name), kind TEXT NOT NULL,
  base_fingerprint TEXT NOT NULL, params_sha256 TEXT NOT NULL, bytes INTEGER NOT NULL,
  created TEXT NOT NULL, added TEXT NOT NULL, recipe TEXT NOT NULL, label TEXT NOT NULL,
  generation INTEGER NOT NULL, signature TEXT NOT NULL, file BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS adapters_owner ON adapters(owner);
CREATE INDEX IF NOT EXISTS adapters_params ON adapters(params_sha256);
CREATE TABLE IF NOT EXISTS lineage(
  heir TEXT PRIMARY KEY REFERENCES adapters(id), parent_sha256 TEXT NOT NULL, child_sha256 TEXT NOT NULL,
  parent_owner TEXT NOT NULL, child_owner TEXT NOT NULL, scheme TEXT NOT NULL, params TEXT NOT NULL,
  overlap REAL NOT NULL, regime TEXT NOT NULL, generation INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS lineage_parent ON lineage(parent_sha256);
CREATE TABLE IF NOT EXISTS designations(
  adapter TEXT NOT NULL REFERENCES adapters(id), successor TEXT NOT NULL REFERENCES people(name),
  owner TEXT NOT NULL, created TEXT NOT NULL, signature TEXT NOT NULL, PRIMARY KEY(adapter, successor));
)SQL";

// Version 2: which text, base and recipe each fleet-trained adapter came from, so a rerun knows who is current.
const char* kTrainings = R"SQL(
CREATE TABLE IF NOT EXISTS trainings(
  person TEXT NOT NULL REFERENCES people(name), text_sha256 TEXT NOT NULL, base_fingerprint TEXT NOT NULL,
  recipe TEXT NOT NULL, adapter TEXT NOT NULL REFERENCES adapters(id), report TEXT NOT NULL, finished TEXT NOT NULL,
  PRIMARY KEY(person, text_sha256, base_fingerprint, recipe));
)SQL";

const char* kAdapterColumns =
    "id, owner, kind, base_fingerprint, params_sha256, bytes, created, added, recipe, label, generation, signature";

AdapterRecord adapter_row(const sql::Stmt& s) {
  AdapterRecord r;
  r.id = s.text(0), r.owner = s.text(1), r.kind = s.text(2), r.base_fingerprint = s.text(3), r.params_sha256 = s.text(4);
  r.bytes = s.integer(5);
  r.created = s.text(6), r.added = s.text(7), r.recipe = s.text(8), r.label = s.text(9);
  r.generation = (int)s.integer(10);
  r.signature = s.text(11);
  return r;
}

// A float as its shortest decimal (1e-2, not 0.009999999776).
double as_written(float x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.7g", x);
  return std::strtod(buf, nullptr);
}

bool is_hex(const std::string& s) {
  for (char c : s)
    if (!std::isxdigit((unsigned char)c)) return false;
  return !s.empty();
}

}  // namespace

std::string adapter_message(const AdapterRecord& r) {
  return "heirloom adapter v1\nid=" + r.id + "\nowner=" + r.owner + "\nkind=" + r.kind + "\nbase=" + r.base_fingerprint +
         "\nparams=" + r.params_sha256 + "\ncreated=" + r.created + "\n";
}

std::string designation_message(const Designation& d) {
  return "heirloom designation v1\nadapter=" + d.adapter + "\nowner=" + d.owner + "\nsuccessor=" + d.successor +
         "\ncreated=" + d.created + "\n";
}

Registry::Registry(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Registry::Registry(Registry&&) noexcept = default;
Registry& Registry::operator=(Registry&&) noexcept = default;
Registry::~Registry() = default;
const std::string& Registry::path() const { return impl_->db.path(); }

namespace {

// The schema in a backend's words: the same tables and columns; PostgreSQL spells the types its way and
// numbers the adapters in a column (SQLite's rowid), so "newest first" breaks ties the same on both.
std::string in_dialect(std::string ddl, sql::Dialect d) {
  if (d == sql::Dialect::sqlite) return ddl;
  auto swap = [&](const std::string& from, const std::string& to) {
    for (size_t at = ddl.find(from); at != std::string::npos; at = ddl.find(from, at + to.size())) ddl.replace(at, from.size(), to);
  };
  swap(" BLOB ", " BYTEA ");
  swap(" REAL ", " DOUBLE PRECISION ");
  swap(" INTEGER ", " BIGINT ");
  swap("signature TEXT NOT NULL, file BYTEA NOT NULL)", "signature TEXT NOT NULL, file BYTEA NOT NULL, seq BIGSERIAL)");
  return ddl;
}

sql::Db connect(const std::string& location, bool create) {
  if (sql::is_postgres(location)) return sql::Db(sql::open_postgres(location));
  if (!create && !registry_location_given(location))
    throw Error("no estate registry at " + location, "create one with `heirloom estate init` (or pass --registry FILE)");
  sql::Db db(sql::open_sqlite(location, create));
  if (create) db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA foreign_keys=ON");
  db.exec("PRAGMA synchronous=FULL");
  return db;
}

}  // namespace

void check_person_name(const std::string& n) {
  bool ok = !n.empty() && n.size() <= 64;
  for (char c : n) ok = ok && (std::isalnum((unsigned char)c) || c == '-' || c == '_' || c == '.');
  if (!ok) throw Error("person name '" + n + "' is not usable", "use 1-64 letters, digits, '-', '_' or '.'");
}

bool registry_location_given(const std::string& location) {
  return !location.empty() && (sql::is_postgres(location) || std::filesystem::exists(location));
}

// The column that orders adapters as they were added.
const char* Registry::Impl::added_order() const { return db.dialect() == sql::Dialect::sqlite ? "rowid" : "seq"; }

namespace {

// The tables, if they are missing; idempotent, so creators racing for one registry agree.
void write_schema(sql::Db& db) {
  sql::Transaction t(db);  // the write lock first: machines creating one server's schema take turns
  db.exec(in_dialect(kSchema, db.dialect()));
  db.exec(in_dialect(kTrainings, db.dialect()));
  sql::Stmt(db, "INSERT INTO meta(key, value) VALUES('schema_version', ?) ON CONFLICT DO NOTHING").bind(1, std::to_string(kSchemaVersion)).run();
  t.commit();
}

// A new SQLite registry is built under a private name and linked into place whole, so a process killed while
// creating it leaves either no registry or a complete one, never an empty file that `open` must refuse.
void create_sqlite_whole(const std::string& location) {
  const std::filesystem::path p(location);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  const std::string tmp = location + ".new." + std::to_string(::getpid());
  std::error_code ignored;  // leftovers of an earlier process with this pid, if any
  for (const char* side : {"", "-wal", "-shm"}) std::filesystem::remove(tmp + side, ignored);
  try {  // the only connection closes at the block's end, folding the WAL into the file
    sql::Db db(sql::open_sqlite(tmp, true));
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=FULL");
    write_schema(db);
  } catch (const Error& e) {
    for (const char* side : {"", "-wal", "-shm"}) std::filesystem::remove(tmp + side, ignored);
    throw Error("cannot create the registry " + location + " (building it as " + tmp + "): " + e.what(),
                "check the folder exists and is writable");
  }
  std::error_code linked;
  std::filesystem::create_hard_link(tmp, location, linked);  // never replaces a registry another creator linked first
  if (linked && !std::filesystem::exists(location)) std::filesystem::rename(tmp, location);  // no hard links here
  std::filesystem::remove(tmp);
}

}  // namespace

Registry Registry::create(const std::string& location) {
  if (!sql::is_postgres(location) && !std::filesystem::exists(location)) create_sqlite_whole(location);
  auto impl = std::make_unique<Impl>();
  impl->db = connect(location, true);
  write_schema(impl->db);
  return checked(std::move(impl), location);
}

Registry Registry::open(const std::string& location) {
  auto impl = std::make_unique<Impl>();
  impl->db = connect(location, false);
  return checked(std::move(impl), location);
}

// The schema version this program writes, after migrating an older registry.
Registry Registry::checked(std::unique_ptr<Impl> impl, const std::string& location) {
  sql::Db& db = impl->db;
  std::string version;
  try {
    sql::Stmt s(db, "SELECT value FROM meta WHERE key='schema_version'");
    if (s.step()) version = s.text(0);
  } catch (const Error&) {
  }
  if (version == "1") {  // a registry from before fleets: add the trainings table
    sql::Transaction t(db);
    db.exec(in_dialect(kTrainings, db.dialect()));
    sql::Stmt(db, "UPDATE meta SET value = ? WHERE key = 'schema_version'").bind(1, std::to_string(kSchemaVersion)).run();
    t.commit();
    version = std::to_string(kSchemaVersion);
  }
  if (version != std::to_string(kSchemaVersion))
    throw Error(db.path() + " is not a heirloom estate registry (schema version '" + version + "', expected " +
                    std::to_string(kSchemaVersion) + ")",
                sql::is_postgres(location) ? "create the schema with `heirloom estate init --registry URL`"
                                           : "pass the file `heirloom estate init` created");
  return Registry(std::move(impl));
}

Person Registry::add_person(const std::string& name, const std::string& public_key_hex) {
  sql::Transaction t(impl_->db);
  if (person(name)) throw Error("'" + name + "' is already in the registry", "choose another name");
  const Person p = insert_person(name, public_key_hex);
  t.commit();
  return p;
}

Person Registry::insert_person(const std::string& name, const std::string& public_key_hex) {
  // Checked here, so a fleet's people (commit_training) meet the same rules as `estate person add`.
  check_person_name(name);
  if (public_key_hex.size() != 64 || !is_hex(public_key_hex))
    throw Error("a public key is 64 hexadecimal digits (ed25519), found " + std::to_string(public_key_hex.size()) + " characters");
  const Person p{name, public_key_hex, utc_now_iso8601()};
  sql::Stmt(impl_->db, "INSERT INTO people(name, public_key, created) VALUES(?, ?, ?)")
      .bind(1, p.name).bind(2, p.public_key).bind(3, p.created).run();
  return p;
}

std::optional<Person> Registry::person(const std::string& name) const {
  sql::Stmt s(impl_->db, "SELECT name, public_key, created FROM people WHERE name = ?");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return Person{s.text(0), s.text(1), s.text(2)};
}

std::vector<Person> Registry::people() const {
  std::vector<Person> out;
  sql::Stmt s(impl_->db, "SELECT name, public_key, created FROM people ORDER BY name");
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2)});
  return out;
}

AdapterRecord Registry::add_adapter(const std::vector<uint8_t>& file, const KeyPair& key, const std::string& owner,
                                    const std::string& label) {
  sql::Transaction t(impl_->db);
  AdapterRecord r = insert_adapter(file, key, owner, label);
  t.commit();
  return r;
}

AdapterRecord Registry::insert_adapter(const std::vector<uint8_t>& file, const KeyPair& key, const std::string& owner,
                                       const std::string& label) {
  const AdapterHeader h = read_adapter_header(file, "the adapter");
  if (!h.checksum_ok) throw Error("the adapter's content checksum does not match its data", "the file is damaged; copy it again");
  AdapterRecord r;
  r.id = sha256_hex(std::string_view(reinterpret_cast<const char*>(file.data()), file.size()));
  r.owner = owner.empty() ? h.info.owner : owner;
  r.kind = kind_name(h.kind);
  r.base_fingerprint = h.info.base_fingerprint;
  r.params_sha256 = h.info.sha256;
  r.bytes = (int64_t)file.size();
  r.created = h.info.created;
  r.label = label;
  r.generation = h.lineage.generation;
  r.recipe = nlohmann::json{{"steps", h.info.steps}, {"batch", h.info.batch}, {"seq", h.info.seq}, {"lr", as_written(h.info.lr)},
                            {"tokens", h.info.tokens}, {"seed", h.info.seed}}.dump();
  const std::optional<Person> p = person(r.owner);
  if (!p) throw Error("'" + r.owner + "' is not in the registry", "add them first: heirloom estate person add " + r.owner);
  if (p->public_key != to_hex(key.public_key.data(), key.public_key.size()))
    throw Error("the key given is not " + r.owner + "'s", "an adapter is signed by its owner; pass their --key");
  {
    sql::Stmt s(impl_->db, std::string("SELECT ") + kAdapterColumns + " FROM adapters WHERE id = ?");
    s.bind(1, r.id);
    if (s.step()) return adapter_row(s);  // the same bytes again: nothing to do
  }
  r.added = utc_now_iso8601();
  r.signature = sign_hex(key, adapter_message(r));
  sql::Stmt(impl_->db, "INSERT INTO adapters(id, owner, kind, base_fingerprint, params_sha256, bytes, created, added, recipe, "
                       "label, generation, signature, file) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .bind(1, r.id).bind(2, r.owner).bind(3, r.kind).bind(4, r.base_fingerprint).bind(5, r.params_sha256)
      .bind(6, r.bytes).bind(7, r.created).bind(8, r.added).bind(9, r.recipe).bind(10, r.label)
      .bind(11, (int64_t)r.generation).bind(12, r.signature).bind_blob(13, file).run();
  if (h.lineage.generation > 0) {
    const Lineage& l = h.lineage;
    sql::Stmt(impl_->db, "INSERT INTO lineage(heir, parent_sha256, child_sha256, parent_owner, child_owner, scheme, params, "
                         "overlap, regime, generation) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bind(1, r.id).bind(2, l.parent_sha256).bind(3, l.child_sha256).bind(4, l.parent_owner).bind(5, l.child_owner)
        .bind(6, l.scheme).bind(7, l.params).bind(8, l.overlap_cosine).bind(9, l.regime).bind(10, (int64_t)l.generation).run();
  }
  return r;
}

Designation Registry::designate(const std::string& adapter_id, const std::string& successor, const KeyPair& owner_key) {
  sql::Transaction t(impl_->db);
  const AdapterRecord a = resolve(adapter_id);
  const std::optional<Person> owner = person(a.owner), heir = person(successor);
  if (!heir) throw Error("'" + successor + "' is not in the registry", "add them first: heirloom estate person add " + successor);
  if (successor == a.owner) throw Error(a.owner + " owns this adapter already", "designate someone else");
  if (!owner || owner->public_key != to_hex(owner_key.public_key.data(), owner_key.public_key.size()))
    throw Error("the key given is not " + a.owner + "'s", "only an adapter's owner can designate its successor; pass their --key");
  Designation d{a.id, a.owner, successor, utc_now_iso8601(), ""};
  d.signature = sign_hex(owner_key, designation_message(d));
  sql::Stmt(impl_->db, "INSERT INTO designations(adapter, successor, owner, created, signature) VALUES(?, ?, ?, ?, ?) "
                       "ON CONFLICT(adapter, successor) DO UPDATE SET owner = excluded.owner, created = excluded.created, "
                       "signature = excluded.signature")
      .bind(1, d.adapter).bind(2, d.successor).bind(3, d.owner).bind(4, d.created).bind(5, d.signature).run();
  t.commit();
  return d;
}

std::vector<AdapterRecord> Registry::adapters(const std::string& owner) const {
  std::vector<AdapterRecord> out;
  sql::Stmt s(impl_->db, std::string("SELECT ") + kAdapterColumns + " FROM adapters" + (owner.empty() ? "" : " WHERE owner = ?") +
                             " ORDER BY added DESC, " + impl_->added_order() + " DESC");
  if (!owner.empty()) s.bind(1, owner);
  while (s.step()) out.push_back(adapter_row(s));
  return out;
}

AdapterRecord Registry::resolve(const std::string& key) const {
  if (key.size() >= 6 && is_hex(key)) {
    sql::Stmt s(impl_->db, std::string("SELECT ") + kAdapterColumns + " FROM adapters WHERE substr(id, 1, ?) = ? LIMIT 2");
    s.bind(1, (int64_t)key.size()).bind(2, key);
    if (s.step()) {
      AdapterRecord r = adapter_row(s);
      if (s.step()) throw Error("'" + key + "' names more than one adapter", "give more digits of the id");
      return r;
    }
  }
  if (person(key)) {
    const std::vector<AdapterRecord> own = adapters(key);
    if (own.empty()) throw Error(key + " has no adapter in the registry", "add one: heirloom estate add ADAPTER.gguf --owner " + key);
    return own.front();
  }
  throw Error("no adapter or person '" + key + "' in the registry", "`heirloom estate list` shows what is there");
}

std::optional<AdapterRecord> Registry::by_params_sha256(const std::string& sha) const {
  sql::Stmt s(impl_->db, std::string("SELECT ") + kAdapterColumns + " FROM adapters WHERE params_sha256 = ? ORDER BY " + impl_->added_order() + " LIMIT 1");
  s.bind(1, sha);
  if (!s.step()) return std::nullopt;
  return adapter_row(s);
}

std::vector<uint8_t> Registry::file(const std::string& id) const {
  sql::Stmt s(impl_->db, "SELECT file FROM adapters WHERE id = ?");
  s.bind(1, id);
  if (!s.step()) throw Error("no adapter " + id + " in the registry");
  return s.blob(0);
}

namespace {

LineageRecord lineage_row(const sql::Stmt& s) {
  LineageRecord l;
  l.heir = s.text(0), l.parent_sha256 = s.text(1), l.child_sha256 = s.text(2), l.parent_owner = s.text(3);
  l.child_owner = s.text(4), l.scheme = s.text(5), l.params = s.text(6);
  l.overlap = s.real(7);
  l.regime = s.text(8);
  l.generation = (int)s.integer(9);
  return l;
}
const char* kLineageColumns = "heir, parent_sha256, child_sha256, parent_owner, child_owner, scheme, params, overlap, regime, generation";

}  // namespace

std::optional<LineageRecord> Registry::lineage(const std::string& id) const {
  sql::Stmt s(impl_->db, std::string("SELECT ") + kLineageColumns + " FROM lineage WHERE heir = ?");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  LineageRecord l = lineage_row(s);
  if (auto p = by_params_sha256(l.parent_sha256)) l.parent = p->id;
  if (auto c = by_params_sha256(l.child_sha256)) l.child = c->id;
  return l;
}

std::vector<LineageRecord> Registry::heirs_of(const std::string& id) const {
  const std::string sha = resolve(id).params_sha256;
  std::vector<std::string> heirs;
  {
    sql::Stmt s(impl_->db, "SELECT heir FROM lineage WHERE parent_sha256 = ? OR child_sha256 = ? ORDER BY heir");
    s.bind(1, sha).bind(2, sha);
    while (s.step()) heirs.push_back(s.text(0));
  }
  std::vector<LineageRecord> out;
  for (const std::string& h : heirs) out.push_back(*lineage(h));
  return out;
}

std::vector<Designation> Registry::designations(const std::string& adapter_id) const {
  std::vector<Designation> out;
  sql::Stmt s(impl_->db, std::string("SELECT adapter, owner, successor, created, signature FROM designations") +
                             (adapter_id.empty() ? "" : " WHERE adapter = ?") + " ORDER BY created, successor");
  if (!adapter_id.empty()) s.bind(1, adapter_id);
  while (s.step()) out.push_back({s.text(0), s.text(1), s.text(2), s.text(3), s.text(4)});
  return out;
}

VerifyReport Registry::verify(const std::string& adapter_id) const {
  VerifyReport rep;
  const std::vector<AdapterRecord> all = adapter_id.empty() ? adapters() : std::vector<AdapterRecord>{resolve(adapter_id)};
  for (const AdapterRecord& r : all) {
    ++rep.adapters;
    const std::string at = "adapter " + r.id.substr(0, 12) + " (" + r.owner + "): ";
    const std::vector<uint8_t> bytes = file(r.id);
    if (sha256_hex(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size())) != r.id)
      rep.problems.push_back(at + "its bytes no longer hash to its id");
    try {
      const AdapterHeader h = read_adapter_header(bytes, r.id);
      if (!h.checksum_ok || h.info.sha256 != r.params_sha256) rep.problems.push_back(at + "its content checksum does not match");
    } catch (const Error& e) {
      rep.problems.push_back(at + "not a readable adapter file: " + e.what());
    }
    const std::optional<Person> p = person(r.owner);
    if (!p || !verify_hex(p->public_key, adapter_message(r), r.signature))
      rep.problems.push_back(at + "the owner's signature does not verify");
    for (const Designation& d : designations(r.id)) {
      ++rep.designations;
      if (d.owner != r.owner || !p || !verify_hex(p->public_key, designation_message(d), d.signature))
        rep.problems.push_back(at + "the designation of " + d.successor + " is not signed by the owner");
    }
  }
  return rep;
}

std::vector<uint8_t> Registry::file_for_inheritance(const std::string& adapter_id, const std::string& successor) const {
  const AdapterRecord r = resolve(adapter_id);
  const VerifyReport v = verify(r.id);
  if (!v.ok()) throw Error("refusing to inherit: " + v.problems.front(), "the registry's copy is damaged or was altered");
  for (const Designation& d : designations(r.id))
    if (d.successor == successor) return file(r.id);
  throw Error("refusing to inherit: " + r.owner + " has not designated " + successor + " as the successor of adapter " +
                  r.id.substr(0, 12),
              "the owner designates a successor with `heirloom estate designate " + r.id.substr(0, 12) + " --successor " +
                  successor + "`");
}

}  // namespace heirloom::estate
