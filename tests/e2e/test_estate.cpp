// The estate registry on real SQLite files: people, signed adapters, lineage, designations; refusals of
// wrong keys, missing consent and tampering; and consistency after the writer is killed at random points.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <thread>

#include "../unit/adapter_fixtures.h"
#include "cli_helpers.h"
#include "../unit/error_of.h"
#include "heirloom/error.h"
#include "heirloom/estate.h"
#include "heirloom/inherit.h"
#include "estate/sql.h"
#include "postgres_server.h"
#include <nlohmann/json.hpp>

namespace heirloom {
namespace {

using namespace estate;
using fixtures::noisy_adapter;
using fixtures::tiny_random_base;
namespace fs = std::filesystem;

std::vector<uint8_t> adapter_bytes(const Adapter& a, const std::string& owner, const std::string& dir) {
  Adapter b = a;
  b.info.owner = owner;
  const std::string path = dir + "/a.gguf";
  save_adapter(b, tiny_random_base().config, path, StorageType::f16);
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

std::string pk(const KeyPair& k) { return to_hex(k.public_key.data(), k.public_key.size()); }

// The registry's database behind its back (SQLite file or PostgreSQL URL), for tampering.
sql::Db raw(const std::string& loc) {
  return sql::Db(sql::is_postgres(loc) ? sql::open_postgres(loc) : sql::open_sqlite(loc, false));
}

void sql_exec(const std::string& db, const std::string& q) { raw(db).exec(q); }

// Flips one bit of the last byte (tensor data) of every stored adapter file, behind the registry's back.
void flip_stored_byte(const std::string& db) {
  sql::Db h = raw(db);
  std::vector<std::pair<std::string, std::vector<uint8_t>>> rows;
  {
    sql::Stmt st(h, "SELECT id, file FROM adapters");
    while (st.step()) rows.emplace_back(st.text(0), st.blob(1));
  }
  for (auto& [id, f] : rows) {
    f.back() ^= 1;
    sql::Stmt(h, "UPDATE adapters SET file = ? WHERE id = ?").bind_blob(1, f).bind(2, id).run();
  }
}

// Each registry test runs on both backends: a SQLite file, and a fresh database on a real PostgreSQL server.
class EstateOn : public ::testing::TestWithParam<std::string> {
 protected:
  bool postgres() const { return GetParam() == "postgres"; }
  std::string location(const Dir& d, const std::string& tag) {
    if (!postgres()) return d / (tag + ".db");
    testing::PostgresServer& pg = testing::PostgresServer::instance();
    if (!pg.error().empty()) throw Error(pg.error());
    static int n = 0;
    return pg.fresh_database("t" + std::to_string(getpid()) + "_" + std::to_string(++n) + "_" + tag);
  }
};
INSTANTIATE_TEST_SUITE_P(Backends, EstateOn, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

using testing::error_of;

TEST_P(EstateOn, PeopleAdaptersLineageAndDesignationsRoundTrip) {
  Dir d("estate");
  const std::string db = location(d, "estate");
  Registry reg = Registry::create(db);
  const KeyPair ann = generate_key(), ben = generate_key();
  reg.add_person("ann", pk(ann));
  reg.add_person("ben", pk(ben));
  EXPECT_EQ(reg.people().size(), 2u);
  EXPECT_NE(error_of([&] { reg.add_person("ann", pk(ann)); }).find("already"), std::string::npos);
  EXPECT_NE(error_of([&] { reg.add_person("a b", pk(ann)); }).find("not usable"), std::string::npos);

  const Model& base = tiny_random_base();
  const std::vector<uint8_t> pa = adapter_bytes(noisy_adapter(AdapterKind::norm, 1), "ann", d.p.string());
  const std::vector<uint8_t> cb = adapter_bytes(noisy_adapter(AdapterKind::norm, 2), "ben", d.p.string());
  const AdapterRecord a = reg.add_adapter(pa, ann, "", "ann's letters");
  EXPECT_EQ(a.owner, "ann");
  EXPECT_EQ(a.id.size(), 64u);
  EXPECT_EQ(a.bytes, (int64_t)pa.size());
  EXPECT_EQ(reg.add_adapter(pa, ann).id, a.id);  // the same bytes again: the stored record
  EXPECT_EQ(reg.adapters().size(), 1u);
  EXPECT_NE(error_of([&] { reg.add_adapter(cb, ann); }).find("not ben's"), std::string::npos);  // ben's file, ann's key
  const AdapterRecord b = reg.add_adapter(cb, ben);
  EXPECT_EQ(reg.resolve(a.id.substr(0, 8)).id, a.id);
  EXPECT_EQ(reg.resolve("ben").id, b.id);
  EXPECT_EQ(reg.file(a.id), pa);

  // Only the owner designates; only the designated successor inherits.
  EXPECT_NE(error_of([&] { reg.designate(a.id, "ben", ben); }).find("not ann's"), std::string::npos);
  EXPECT_NE(error_of([&] { reg.file_for_inheritance(a.id, "ben"); }).find("has not designated ben"), std::string::npos);
  reg.designate(a.id, "ben", ann);
  EXPECT_EQ(reg.file_for_inheritance(a.id, "ben"), pa);

  // An heir, stored by its new owner, links to both adapters it came from.
  const Adapter parent = load_adapter_bytes(pa, "parent", base), child = load_adapter_bytes(cb, "child", base);
  const inherit::OverlapReport ov = inherit::overlap(parent, child, base.config);
  const Adapter heir = inherit::merge_heir(parent, child, inherit::parse_scheme("linear"), base.config, ov);
  const AdapterRecord h = reg.add_adapter(adapter_bytes(heir, "ben", d.p.string()), ben);
  EXPECT_EQ(h.generation, 1);
  const std::optional<LineageRecord> l = reg.lineage(h.id);
  ASSERT_TRUE(l);
  EXPECT_EQ(l->parent, a.id);
  EXPECT_EQ(l->child, b.id);
  EXPECT_EQ(l->scheme, "linear");
  EXPECT_EQ(l->regime, ov.regime);
  ASSERT_EQ(reg.heirs_of(a.id).size(), 1u);
  EXPECT_EQ(reg.heirs_of(a.id)[0].heir, h.id);
  EXPECT_FALSE(reg.lineage(a.id));

  const VerifyReport v = reg.verify();
  EXPECT_TRUE(v.ok()) << v.problems.front();
  EXPECT_EQ(v.adapters, 3);
  EXPECT_EQ(v.designations, 1);
  // Reopened, everything is still there; creating it again is harmless.
  Registry::create(db);
  const Registry again = Registry::open(db);
  EXPECT_EQ(again.adapters().size(), 3u);
  EXPECT_EQ(again.designations(a.id).size(), 1u);
}

TEST_P(EstateOn, TamperingAndForgeryAreRefused) {
  Dir d("estate_tamper");
  const std::string db = location(d, "tamper");
  const KeyPair ann = generate_key(), ben = generate_key(), eve = generate_key();
  std::string id;
  {
    Registry reg = Registry::create(db);
    reg.add_person("ann", pk(ann));
    reg.add_person("ben", pk(ben));
    id = reg.add_adapter(adapter_bytes(noisy_adapter(AdapterKind::norm, 1), "ann", d.p.string()), ann).id;
    reg.designate(id, "ben", ann);
  }
  // One byte of the stored file changed: its hash and checksum fail, and nobody can inherit it.
  flip_stored_byte(db);
  Registry reg = Registry::open(db);
  VerifyReport v = reg.verify();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.problems.front().find("no longer hash"), std::string::npos) << v.problems.front();
  EXPECT_NE(error_of([&] { reg.file_for_inheritance(id, "ben"); }).find("refusing"), std::string::npos);

  // A designation forged with another key does not verify.
  Dir d2("estate_forge");
  const std::string db2 = location(d2, "forge");
  Registry r2 = Registry::create(db2);
  r2.add_person("ann", pk(ann));
  r2.add_person("ben", pk(ben));
  const std::string id2 = r2.add_adapter(adapter_bytes(noisy_adapter(AdapterKind::norm, 3), "ann", d2.p.string()), ann).id;
  Designation forged{id2, "ann", "ben", "2026-01-01T00:00:00Z", ""};
  forged.signature = sign_hex(eve, designation_message(forged));
  sql_exec(db2, "INSERT INTO designations VALUES('" + id2 + "', 'ben', 'ann', '" + forged.created + "', '" +
                                 forged.signature + "')");
  v = r2.verify();
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.problems.front().find("not signed by the owner"), std::string::npos);
  EXPECT_NE(error_of([&] { r2.file_for_inheritance(id2, "ben"); }).find("refusing"), std::string::npos);

  // Not a registry at all.
  if (postgres()) {
    const std::string empty = location(d, "empty");
    EXPECT_NE(error_of([&] { Registry::open(empty); }).find("not a heirloom estate registry"), std::string::npos);
    EXPECT_NE(error_of([&] { Registry::open(empty + "_missing"); }).find("cannot connect"), std::string::npos);
    return;
  }
  std::ofstream(d / "plain.db") << "not sqlite";
  EXPECT_NE(error_of([&] { Registry::open(d / "plain.db"); }).find("estate"), std::string::npos);
  EXPECT_NE(error_of([&] { Registry::open(d / "missing.db"); }).find("no estate registry"), std::string::npos);
}

// A registry made before fleets (schema 1, no trainings table) opens as schema 2 with its contents kept.
TEST_P(EstateOn, ASchemaOneRegistryIsMigrated) {
  Dir d("estate_migrate");
  const std::string db = location(d, "migrate");
  const KeyPair ann = generate_key();
  {
    Registry reg = Registry::create(db);
    reg.add_person("ann", pk(ann));
  }
  sql_exec(db, "DROP TABLE trainings");
  sql_exec(db, "UPDATE meta SET value = '1' WHERE key = 'schema_version'");
  Registry reg = Registry::open(db);
  EXPECT_EQ(reg.people().size(), 1u);
  EXPECT_TRUE(reg.trainings().empty());
  const TrainingKey k{"ann", "text", "base", "{}"};
  bool fresh = false;
  reg.commit_training(k, adapter_bytes(noisy_adapter(AdapterKind::norm, 5), "ann", d.p.string()), ann, "{}", &fresh);
  EXPECT_TRUE(fresh);
  reg.commit_training(k, adapter_bytes(noisy_adapter(AdapterKind::norm, 6), "ann", d.p.string()), ann, "{}", &fresh);
  EXPECT_FALSE(fresh) << "the same training committed twice";
  EXPECT_EQ(reg.adapters().size(), 1u);
  sql::Db h = raw(db);
  sql::Stmt v(h, "SELECT value FROM meta WHERE key = 'schema_version'");
  ASSERT_TRUE(v.step());
  EXPECT_EQ(v.text(0), "2");
}

// A writer adding adapters and designations is killed (SIGKILL) at random moments, over and over: every
// time, the file passes SQLite's integrity check, every stored adapter verifies, and nothing is half there.
TEST_P(EstateOn, KilledWritersLeaveTheRegistryConsistent) {
  Dir d("estate_kill");
  const std::string db = location(d, "kill");
  const KeyPair ann = generate_key(), ben = generate_key();
  {
    Registry reg = Registry::create(db);
    reg.add_person("ann", pk(ann));
    reg.add_person("ben", pk(ben));
  }
  std::vector<std::vector<uint8_t>> files;
  for (int i = 0; i < 40; ++i) files.push_back(adapter_bytes(noisy_adapter(AdapterKind::norm, 100 + i), "ann", d.p.string()));
  std::mt19937 rng(7);
  int killed_mid_run = 0, partial = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {  // the writer: every file, then a designation of each
      try {
        Registry reg = Registry::open(db);
        for (const auto& f : files) reg.designate(reg.add_adapter(f, ann).id, "ben", ann);
      } catch (...) {
        _exit(3);
      }
      _exit(0);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(200, 60000)(rng)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    killed_mid_run += WIFSIGNALED(status);
    ASSERT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 3) << "the writer failed on its own";

    if (!postgres()) {
      sql::Db h = raw(db);
      sql::Stmt st(h, "PRAGMA integrity_check");
      ASSERT_TRUE(st.step());
      EXPECT_EQ(st.text(0), "ok");
    }
    const Registry reg = Registry::open(db);
    const VerifyReport v = reg.verify();
    EXPECT_TRUE(v.ok()) << "round " << round << ": " << v.problems.front();
    for (const AdapterRecord& a : reg.adapters()) EXPECT_EQ(a.bytes, (int64_t)reg.file(a.id).size());
    EXPECT_LE(reg.designations().size(), reg.adapters().size());
    partial += WIFSIGNALED(status) && reg.designations().size() < files.size();
  }
  EXPECT_GT(partial, 0) << "no writer was killed halfway through its work";
  EXPECT_GT(killed_mid_run, 0) << "no writer was killed before it finished; the test proved nothing";
  // A last, uninterrupted writer completes the set, each adapter once.
  Registry reg = Registry::open(db);
  for (const auto& f : files) reg.designate(reg.add_adapter(f, ann).id, "ben", ann);
  EXPECT_EQ(reg.adapters().size(), files.size());
  EXPECT_EQ(reg.designations().size(), files.size());
  EXPECT_TRUE(reg.verify().ok());
}

// A creator killed at any point leaves no SQLite registry or a whole one, never a file `open` must refuse:
// a child creates registries one after another until it is killed, and every one that exists must open.
TEST(Estate, KilledCreatorsLeaveNoHalfMadeRegistry) {
  Dir d("estate_create_kill");
  std::mt19937 rng(5);
  int cut_short = 0;
  for (int round = 0; round < 6; ++round) {
    const fs::path dir = d / ("r" + std::to_string(round));
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        for (int i = 0;; ++i) Registry::create((dir / (std::to_string(i) + ".db")).string());
      } catch (...) {
        _exit(3);
      }
    }
    // The kill comes at a random point after the first registry exists (waiting for it, rather than a fixed
    // time from the fork: a loaded machine may take longer than that to make one).
    const auto has_registry = [&] {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().extension() == ".db") return true;
      return false;
    };
    for (int waited = 0; !has_registry() && waited < 20000; ++waited)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::this_thread::sleep_for(std::chrono::microseconds(std::uniform_int_distribution<int>(20000, 80000)(rng)));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the creator failed on its own";
    int made = 0;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".db") {
        ++made;
        EXPECT_NO_THROW(Registry::open(e.path().string())) << e.path();
      } else {
        cut_short += e.path().string().find(".new.") != std::string::npos;
      }
    EXPECT_GT(made, 0) << "round " << round << ": no registry was made before the kill";
  }
  EXPECT_GT(cut_short, 0) << "no creator was killed mid-creation; the test proved nothing";
}

// The commands as a user runs them: init, people, add, designate, verify, and inherit through the registry,
// which refuses a successor the owner never designated and stores the heir, signed, with its lineage.
TEST(Estate, CommandsAndInheritanceThroughTheRegistry) {
  Dir d("estate_cli");
  setenv("HEIRLOOM_DATA", d.p.c_str(), 1);  // keys and the default registry go here
  const Model& base = tiny_random_base();
  save_model(base, d / "base.gguf");
  Adapter pa = noisy_adapter(AdapterKind::norm, 1), cb = noisy_adapter(AdapterKind::norm, 2);
  pa.info.owner = "ann";
  cb.info.owner = "ben";
  pa.info.base_fingerprint = cb.info.base_fingerprint = base.fingerprint();
  save_adapter(pa, base.config, d / "ann.gguf", StorageType::f16);
  save_adapter(cb, base.config, d / "ben.gguf", StorageType::f16);

  for (const std::string& c : std::vector<std::string>{"estate init", "estate person add ann", "estate person add ben", "estate person add cy",
                               "estate add " + d / "ann.gguf" + " --label letters", "estate designate ann --successor ben"}) {
    const CliResult r = run(c);
    ASSERT_EQ(r.code, 0) << c << "\n" << r.out;
  }
  EXPECT_EQ(fs::status(d / "keys/ann.key").permissions() & fs::perms::group_all, fs::perms::none);
  CliResult r = run("estate list --json");
  EXPECT_NE(r.out.find("\"letters\""), std::string::npos) << r.out;
  r = run("estate verify");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("ok: 1 adapters, 1 designations"), std::string::npos) << r.out;

  const std::string inherit = "inherit --registry " + d / "estate.db" + " --base " + d / "base.gguf" + " --parent ann --child " +
                              d / "ben.gguf" + " --scheme linear --accept --out ";
  r = run(inherit + d / "cy.gguf" + " --owner cy");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("has not designated cy"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(d / "cy.gguf"));
  r = run(inherit + d / "heir.gguf" + " --owner ben --json");
  ASSERT_EQ(r.code, 0) << r.out;
  r = run("estate lineage ben --json");
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["generation"], 1);
  EXPECT_EQ(j["scheme"], "linear");
  EXPECT_EQ(j["parent"]["owner"], "ann");
  EXPECT_EQ(j["child"]["in_registry"], false);  // ben's own adapter was never stored
  r = run("estate lineage ann");
  EXPECT_NE(r.out.find("heir: "), std::string::npos) << r.out;
  r = run("estate verify --json");
  EXPECT_EQ(r.code, 0) << r.out;
  r = run("estate add " + d / "ann.gguf" + " --owner ann --key " + d / "keys/ben.key");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("not ann's"), std::string::npos) << r.out;
  unsetenv("HEIRLOOM_DATA");
}

}  // namespace
}  // namespace heirloom
