// `heirloom fleet` (issue 10): the manifest's checks; train, resume and refresh with each person committed once;
// and runs killed at random points, whole or one MPI rank at a time, never leaving a partial adapter, a
// registry row without its file, or a person twice.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "../unit/adapter_fixtures.h"
#include "cli_helpers.h"
#include "../unit/error_of.h"
#include "heirloom/error.h"
#include "heirloom/estate.h"
#include "heirloom/fleet.h"
#include "postgres_server.h"

namespace heirloom {
namespace {

namespace fs = std::filesystem;
using fixtures::tiny_random_base;

void write(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

using testing::error_of;

// Text of a person: a few sentences of their own, repeated to some kilobytes.
std::string person_text(int i, int kb) {
  const std::string voice = "Person " + std::to_string(i) + " writes about the " + std::string(1, char('a' + i % 26)) +
                            " river, the mill and the long winter evenings.\n\n";
  std::string t;
  while ((int)t.size() < kb * 1024) t += voice;
  return t;
}

// A small estate to run fleets in: a tiny base, general text, and `n` people's texts and their manifest.
struct FleetDir {
  Dir d;
  int n;
  std::string registry;
  explicit FleetDir(const std::string& tag, int people) : d(tag), n(people) {
    save_model(tiny_random_base(), d / "base.gguf");
    write(d / "general.txt", person_text(99, 6));
    std::ofstream m(d / "people.jsonl");
    for (int i = 0; i < n; ++i) {
      write(d / ("p" + std::to_string(i) + ".txt"), person_text(i, 3 + i % 4));
      m << "{\"id\": \"p" << i << "\", \"text\": [\"p" << i << ".txt\"]}\n";
    }
  }
  fleet::Options options(int steps = 3) const {
    fleet::Options o;
    o.base = d / "base.gguf";
    o.registry = registry.empty() ? d / "estate.db" : registry;
    o.key_dir = d / "keys";
    o.recipe.steps = steps;
    o.recipe.eval_tokens = 64;
    o.recipe.trajectory_every = 0;
    o.recipe.general = d / "general.txt";
    o.recipe.precision = Precision::fp32;
    return o;
  }
};

TEST(Fleet, TheManifestIsCheckedLineByLine) {
  Dir d("fleet_manifest");
  auto err = [&](const std::string& body) {
    write(d / "m.jsonl", body);
    return error_of([&] { fleet::read_manifest(d / "m.jsonl", AdapterKind::norm); });
  };
  EXPECT_NE(err("{\"id\": \"a\", \"text\": \"a.txt\"}\nnot json\n").find("m.jsonl:2: not a JSON object"), std::string::npos);
  EXPECT_NE(err("{\"text\": \"a.txt\"}\n").find(":1: \"id\""), std::string::npos);
  EXPECT_NE(err("{\"id\": \"a\", \"text\": []}\n").find("\"text\" must be"), std::string::npos);
  EXPECT_NE(err("{\"id\": \"a\", \"text\": \"a.txt\"}\n\n{\"id\": \"a\", \"text\": \"b.txt\"}\n").find(":3: the id 'a' appears twice"),
            std::string::npos);
  EXPECT_NE(err("{\"id\": \"a\", \"text\": \"a.txt\", \"kind\": \"wings\"}\n").find("wings"), std::string::npos);
  EXPECT_NE(err("\n").find("names nobody"), std::string::npos);
  EXPECT_NE(err("{\"id\": \"../x\", \"text\": \"a.txt\"}\n").find(":1: person name '../x' is not usable"), std::string::npos);
  write(d / "big.txt", std::string(5000, 'x'));
  write(d / "m.jsonl", "{\"id\": \"small\", \"text\": \"a.txt\"}\n{\"id\": \"big\", \"text\": [\"big.txt\"], \"kind\": \"lora\"}\n");
  const auto people = fleet::read_manifest(d / "m.jsonl", AdapterKind::steer);
  ASSERT_EQ(people.size(), 2u);
  EXPECT_EQ(people[0].texts[0], d / "a.txt");  // relative to the manifest
  EXPECT_EQ(people[0].kind, AdapterKind::steer);
  EXPECT_EQ(people[1].kind, AdapterKind::lora);
  EXPECT_EQ(people[1].text_bytes, 5000);
  EXPECT_EQ(fleet::dealing_order(people), (std::vector<int>{1, 0}));  // largest text first
}

// On both registries: a SQLite file, and a database on a real PostgreSQL server.
class FleetOn : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Backends, FleetOn, ::testing::Values("sqlite", "postgres"),
                         [](const ::testing::TestParamInfo<std::string>& i) { return i.param; });

TEST_P(FleetOn, TrainsResumesAndRefreshesEachPersonOnce) {
  FleetDir f("fleet_resume", 5);
  std::string db = f.d / "estate.db";
  if (GetParam() == "postgres") {
    testing::PostgresServer& pg = testing::PostgresServer::instance();
    ASSERT_EQ(pg.error(), "");
    db = pg.fresh_database("fleet" + std::to_string(getpid()));
  }
  f.registry = db;
  const auto people = fleet::read_manifest(f.d / "people.jsonl", AdapterKind::norm);
  fleet::Summary s = fleet::run_local(f.options(), people);
  EXPECT_EQ(s.trained, 5);
  EXPECT_EQ(s.failed, 0) << (s.failed ? s.outcomes.front().error : "");
  for (const auto& o : s.outcomes) EXPECT_GT(o.personal_before, 1.0) << o.person;
  {
    const estate::Registry reg = estate::Registry::open(db);
    EXPECT_EQ(reg.trainings().size(), 5u);
    EXPECT_EQ(reg.adapters().size(), 5u);
    EXPECT_EQ(reg.people().size(), 5u);
    EXPECT_TRUE(reg.verify().ok());
  }
  // Again: everyone is current and nothing is written.
  s = fleet::run_local(f.options(), people);
  EXPECT_EQ(s.current, 5);
  EXPECT_EQ(s.trained, 0);
  // A changed text is trained again; another recipe trains everyone again; a missing file fails alone.
  write(f.d / "p2.txt", person_text(2, 4) + "A new essay.\n");
  s = fleet::run_local(f.options(), people);
  EXPECT_EQ(s.trained, 1);
  EXPECT_EQ(s.current, 4);
  fs::remove(f.d / "p4.txt");
  s = fleet::run_local(f.options(4), people);
  EXPECT_EQ(s.trained, 4);
  ASSERT_EQ(s.failed, 1);
  for (const auto& o : s.outcomes)
    if (o.status == fleet::Outcome::failed) {
      EXPECT_NE(o.error.find("p4.txt"), std::string::npos) << o.error;
    }
  const estate::Registry reg = estate::Registry::open(db);
  EXPECT_EQ(reg.trainings("p2").size(), 3u);
  EXPECT_EQ(reg.trainings("p4").size(), 1u);
  EXPECT_EQ(reg.trainings().size(), 10u);
  EXPECT_EQ(reg.adapters().size(), 10u);
  EXPECT_TRUE(reg.verify().ok());
  // A person registered with another key is refused, not silently re-keyed.
  fs::remove(f.d / "keys/p0.key");
  write(f.d / "p0.txt", person_text(0, 5));
  s = fleet::run_local(f.options(), {people[0]});
  ASSERT_EQ(s.failed, 1);
  EXPECT_NE(s.outcomes[0].error.find("key"), std::string::npos) << s.outcomes[0].error;
}

// Pids of this fleet's processes (the heirloom ranks), found by their registry path on the command line.
std::vector<pid_t> fleet_processes(const std::string& registry) {
  std::vector<pid_t> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmd;
    try {  // a process that exits while it is read fails the read (ESRCH): it is no rank to kill any more
      std::ifstream in(e.path() / "cmdline");
      cmd.assign(std::istreambuf_iterator<char>(in), {});
    } catch (const std::exception&) {
      continue;
    }
    if (cmd.find("heirloom") != std::string::npos && cmd.find(registry) != std::string::npos &&
        cmd.find("mpirun") == std::string::npos && cmd.find(std::string("fleet\0", 6)) != std::string::npos)
      out.push_back(std::stoi(name));
  }
  return out;
}

// The registry after any interruption: it verifies, every adapter has its training and its bytes, and no
// person has two trainings of the same text.
void expect_consistent(const std::string& db, int round) {
  const estate::Registry reg = estate::Registry::open(db);
  const estate::VerifyReport v = reg.verify();
  EXPECT_TRUE(v.ok()) << "round " << round << ": " << v.problems.front();
  const auto trainings = reg.trainings();
  std::map<std::string, int> per_person;
  for (const auto& t : trainings) ++per_person[t.key.person];
  for (const auto& [p, n] : per_person) EXPECT_EQ(n, 1) << "round " << round << ": " << p << " trained twice";
  EXPECT_EQ(reg.adapters().size(), trainings.size()) << "round " << round;
  for (const auto& a : reg.adapters()) EXPECT_EQ(a.bytes, (int64_t)reg.file(a.id).size());
}

TEST_P(FleetOn, KilledRunsAndRanksLeaveNoPartialOrDuplicateWork) {
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) FAIL() << "mpirun is missing: scripts/setup installs openmpi-bin";
  const int n = 60;
  FleetDir f("fleet_kill", n);
  std::string db = f.d / "estate.db";
  if (GetParam() == "postgres") {
    testing::PostgresServer& pg = testing::PostgresServer::instance();
    ASSERT_EQ(pg.error(), "");
    db = pg.fresh_database("kill" + std::to_string(getpid()));
  }
  const char* cli = std::getenv("HEIRLOOM_CLI");
  ASSERT_NE(cli, nullptr);
  setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);  // CI runs as root
  setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
  setenv("OMPI_MCA_btl_vader_single_copy_mechanism", "none", 1);  // containers forbid ptrace-based copies
  const std::string args = std::string(cli) + " fleet --manifest " + f.d / "people.jsonl" + " --base " + f.d / "base.gguf" +
                           " --registry " + db + " --keys " + f.d / "keys" + " --general " + f.d / "general.txt" +
                           " --steps 300 --eval-tokens 64 --precision fp32 --json";
  std::mt19937 rng(11);
  int interrupted = 0, rank_kills = 0;
  for (int round = 0; round < 6; ++round) {
    const bool mpi = round % 3 != 2, kill_one_rank = mpi && round % 2 == 0;
    const std::string cmd = (mpi ? "exec mpirun --oversubscribe -np 3 " : "exec ") + args + " >/dev/null 2>&1";
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      setpgid(0, 0);
      execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
      _exit(127);
    }
    setpgid(pid, pid);
    std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(900, 2500)(rng)));
    if (kill_one_rank) {
      const std::vector<pid_t> ranks = fleet_processes(db);
      if (!ranks.empty()) {
        kill(ranks[std::uniform_int_distribution<size_t>(0, ranks.size() - 1)(rng)], SIGKILL);
        ++rank_kills;
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
      }
    }
    kill(-pid, SIGKILL);  // the whole run (what is left of it)
    int status = 0;
    waitpid(pid, &status, 0);
    for (int i = 0; i < 50 && !fleet_processes(db).empty(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (pid_t left : fleet_processes(db)) kill(left, SIGKILL);  // a rank mpirun did not take down
    interrupted += WIFSIGNALED(status);
    expect_consistent(db, round);
  }
  EXPECT_GT(interrupted, 0) << "no run was killed before it finished; the test proved nothing";
  EXPECT_GT(rank_kills, 0);
  {
    const estate::Registry reg = estate::Registry::open(db);
    EXPECT_LT((int)reg.trainings().size(), n) << "every run finished before its kill; the test proved nothing";
  }
  // A last run over MPI finishes exactly what is missing.
  FILE* p = popen(("mpirun --oversubscribe -np 3 " + args + " 2>&1").c_str(), "r");
  ASSERT_NE(p, nullptr);
  CliResult r{0, ""};
  char buf[4096];
  for (size_t k; (k = fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, k);
  const int st = pclose(p);
  r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  ASSERT_EQ(r.code, 0) << r.out;
  const nlohmann::json j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
  const estate::Registry reg = estate::Registry::open(db);
  EXPECT_EQ(j["current"].get<int>() + j["trained"].get<int>(), n);
  EXPECT_EQ((int)reg.trainings().size(), n);
  expect_consistent(db, 99);
  for (const auto& k : fs::directory_iterator(f.d / "keys"))  // a kill mid-write leaves at most a .tmp, never a half key
    if (k.path().extension() == ".key") {
      EXPECT_NO_THROW(estate::load_secret_key(k.path().string())) << k.path();
    }
}

}  // namespace
}  // namespace heirloom
