// `heirloom bench fleet` (issue 10): a fleet of synthetic people cut from the person corpora trained here,
// the registry's commits per second under K concurrent writer processes, and what both mean for a school.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/rng.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/fleet.h"
#include "heirloom/text.h"
#include "heirloom/threads.h"

namespace heirloom::fleet {

namespace fs = std::filesystem;

namespace {

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// People cut from the person corpora in turn: person i takes the next min_kb..max_kb of corpus i % n,
// ending at a paragraph break, so their sizes differ as real people's do.
std::vector<Person> synthetic_people(const BenchOptions& o, const CorpusDir& cd) {
  std::vector<std::string> corpora;
  for (const auto& e : fs::directory_iterator(cd.dir))
    if (e.is_directory() && e.path().filename() != "general" && fs::exists(e.path() / "train.txt"))
      corpora.push_back(e.path().filename().string());
  std::sort(corpora.begin(), corpora.end());
  if (corpora.empty())
    throw Error("no person corpora under " + cd.dir, "build them first: heirloom corpus build");
  std::vector<std::string> texts;
  for (const auto& c : corpora) texts.push_back(read_text_file(cd.train_path(c)));
  std::vector<size_t> offset(corpora.size(), 0);
  const fs::path dir = fs::path(o.work_dir) / "people";
  fs::create_directories(dir);
  std::ofstream manifest(fs::path(o.work_dir) / "people.jsonl");
  Rng rng(17);
  for (int i = 0; i < o.people; ++i) {
    const size_t c = (size_t)i % corpora.size();
    const std::string& t = texts[c];
    const size_t want = (size_t)(o.min_kb + (int)rng.below((uint64_t)(o.max_kb - o.min_kb + 1))) * 1024;
    if (offset[c] + want > t.size()) offset[c] = 0;  // a small corpus is reused from its start
    size_t end = std::min(t.size(), offset[c] + want);
    const size_t para = t.rfind("\n\n", end);
    if (para != std::string::npos && para > offset[c] + want / 2) end = para;
    char name[32];
    std::snprintf(name, sizeof name, "p%05d", i);
    std::ofstream((dir / (std::string(name) + ".txt")).string()) << t.substr(offset[c], end - offset[c]);
    offset[c] = end;
    manifest << "{\"id\": \"" << name << "\", \"text\": \"people/" << name << ".txt\"}\n";
  }
  manifest.close();
  return read_manifest((fs::path(o.work_dir) / "people.jsonl").string(), AdapterKind::norm);
}

// K writer processes committing trainings of distinct people at once; the commits per second of them all.
// On SQLite a new file per K; on PostgreSQL the one database, with people named for the K.
BenchReport::Writers measure_writers(const BenchOptions& o, const Model& base, int writers, bool postgres) {
  const std::string db = postgres ? o.postgres : (fs::path(o.work_dir) / ("writers-" + std::to_string(writers) + ".db")).string();
  if (!postgres) fs::remove(db);
  estate::Registry::create(db);
  const size_t before = estate::Registry::open(db).trainings().size();
  // The adapters are made before the clock starts: distinct bytes, one per commit.
  std::vector<std::vector<uint8_t>> files;
  Adapter a = make_adapter(base, AdapterKind::norm, {}, 1);
  const fs::path tmp = fs::path(o.work_dir) / "writer-adapter.gguf";
  for (int i = 0; i < writers * o.commits_per_writer; ++i) {
    a.params[0] = 1e-3f * (float)(i + 1);
    save_adapter(a, base.config, tmp.string(), StorageType::f16);
    const std::string bytes = read_text_file(tmp.string());
    files.emplace_back(bytes.begin(), bytes.end());
  }
  fs::remove(tmp);
  const std::string fingerprint = base.fingerprint();  // a hash of every weight: once, not per commit
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<pid_t> pids;
  for (int w = 0; w < writers; ++w) {
    const pid_t pid = fork();
    if (pid < 0) throw Error("cannot start a writer process");
    if (pid == 0) {
      int code = 0;
      try {
        estate::Registry reg = estate::Registry::open(db);
        for (int i = 0; i < o.commits_per_writer; ++i) {
          const int k = w * o.commits_per_writer + i;
          std::string name = "k";  // (not "k" + to_string(…): gcc 12 warns falsely of an overlapping memcpy there)
          name += std::to_string(writers) + "w" + std::to_string(k);
          const estate::TrainingKey key{name, std::to_string(k), fingerprint, "{}"};
          reg.commit_training(key, files[k], estate::generate_key(), "{}");
        }
      } catch (const std::exception& e) {
        std::fprintf(stderr, "writer %d: %s\n", w, e.what());
        code = 1;
      }
      _exit(code);
    }
    pids.push_back(pid);
  }
  bool ok = true;
  for (pid_t pid : pids) {
    int st = 0;
    waitpid(pid, &st, 0);
    ok = ok && WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  BenchReport::Writers r{postgres ? "postgresql" : "sqlite", writers, writers * o.commits_per_writer, since(t0), 0};
  if (!ok) throw Error("a registry writer failed (its message is above)");
  if (estate::Registry::open(db).trainings().size() - before != (size_t)r.commits) throw Error("the registry lost commits");
  r.commits_per_second = r.commits / r.seconds;
  return r;
}

}  // namespace

BenchReport bench(const BenchOptions& o) {
  if (o.people < 1 || o.min_kb < 1 || o.max_kb < o.min_kb) throw Error("bench fleet: people >= 1 and 1 <= min_kb <= max_kb");
  BenchReport r;
  const CorpusDir cd{o.corpus_dir.empty() ? default_corpus_dir() : o.corpus_dir};
  BenchOptions opt = o;
  const bool own_dir = opt.work_dir.empty();
  if (own_dir) opt.work_dir = (fs::temp_directory_path() / ("heirloom-bench-fleet-" + std::to_string(::getpid()))).string();
  fs::create_directories(opt.work_dir);
  const std::vector<Person> people = synthetic_people(opt, cd);
  const Model base = load_model(opt.base);  // the writers' adapters are this base's
  // Registry throughput first: the writers are processes forked before this process has OpenMP threads busy.
  for (int k : opt.writers) r.registry.push_back(measure_writers(opt, base, k, false));
  if (!opt.postgres.empty())
    for (int k : opt.writers) r.registry.push_back(measure_writers(opt, base, k, true));

  Options f;
  f.base = opt.base;
  f.registry = (fs::path(opt.work_dir) / "fleet.db").string();
  f.key_dir = (fs::path(opt.work_dir) / "keys").string();
  fs::remove(f.registry);
  fs::remove_all(f.key_dir);
  f.recipe.steps = opt.steps;
  f.recipe.eval_tokens = opt.eval_tokens;
  f.recipe.trajectory_every = 0;
  f.recipe.precision = opt.precision;
  f.recipe.general = fs::exists(cd.heldout_path("general")) ? cd.heldout_path("general") : "";
  const Run run = fleet::run(f, people, 0, opt.progress);
  r.people = run.summary.total, r.trained = run.summary.trained, r.failed = run.summary.failed;
  r.seconds = run.summary.seconds;
  r.threads = run.threads;
  r.seconds_per_person_core = r.trained ? r.seconds * r.threads / r.trained : 0;
  r.people_per_hour_per_core = r.seconds_per_person_core > 0 ? 3600.0 / r.seconds_per_person_core : 0;
  r.school = opt.school;
  r.school_core_hours = r.school * r.seconds_per_person_core / 3600.0;
  r.cores_for_daily_refresh = r.school * r.seconds_per_person_core / 86400.0;
  if (own_dir) fs::remove_all(opt.work_dir);
  return r;
}

}  // namespace heirloom::fleet
