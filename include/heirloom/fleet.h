// `heirloom fleet` (issue 10): personalise, or refresh, every person of a manifest into an estate registry.
// A person is skipped when the registry records a training with the same text, base and recipe; each
// finished person is committed in one registry transaction (person, adapter, training), so an interrupted
// run loses only the people in flight, and a rerun trains exactly those still missing. Under MPI
// (src/fleet/mpi_fleet.cpp) the people are dealt out to the ranks one at a time, largest text first.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

#include "heirloom/estate.h"
#include "heirloom/model.h"
#include "heirloom/personalize.h"

namespace heirloom::fleet {

// One manifest line: {"id": "s00001", "text": ["a.txt", "b.txt"], "kind": "norm"} ("text" may be one
// string; relative paths are relative to the manifest's folder; "kind" defaults to the run's).
struct Person {
  std::string id;
  std::vector<std::string> texts;
  AdapterKind kind = AdapterKind::norm;
  int64_t text_bytes = 0;  // for largest-first dealing (0 when a file is missing: it fails in its job)
  int line = 0;
};
// Error naming the line and what was expected; duplicate ids are refused.
std::vector<Person> read_manifest(const std::string& path, AdapterKind default_kind);

struct Options {
  std::string base;      // base model (GGUF)
  std::string registry;  // created when missing
  std::string key_dir;   // one secret key per person (NAME.key), made on their first training
  PersonalizeOptions recipe;  // steps, lr, seq, batch, seed, lora, precision, eval_tokens, general
};

// The settings that make an adapter what it is, as canonical JSON (the registry's recipe column).
std::string recipe_json(const PersonalizeOptions& p, AdapterKind kind, Precision resolved);
// sha256 over the person's files in manifest order (each file's length, then its bytes).
std::string text_sha256(const std::vector<std::string>& files);

struct Outcome {
  enum Status { trained, current, failed } status = failed;
  std::string person, adapter, error;
  double seconds = 0;
  double personal_before = 0, personal_after = 0, general_before = 0, general_after = 0;
};
const char* status_name(Outcome::Status s);

// One process's worker: the base loaded once and its own registry connection.
class Worker {
 public:
  explicit Worker(const Options& o);
  ~Worker();
  Outcome run(const Person& p);  // never throws for one person's problem: the outcome says it failed
 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct Summary {
  int total = 0, trained = 0, current = 0, failed = 0;
  double seconds = 0;
  std::vector<Outcome> outcomes;  // in finishing order
  void add(Outcome r);            // counted by its status, then kept
  std::string counts() const;     // "3 trained, 1 current, 0 failed"
};
using OnDone = std::function<void(const Summary& so_far)>;
// Everything on this process, largest text first; on_done after each person (progress).
Summary run_local(const Options& o, const std::vector<Person>& people, const OnDone& on_done = {});
// People in dealing order: largest text first, ties by manifest order.
std::vector<int> dealing_order(const std::vector<Person>& people);

// Was this process started by mpirun (OpenMPI, MPICH or PMIx environment)?
bool launched_by_mpi();

struct Run {
  int rank = 0, ranks = 1, threads = 1;
  Summary summary;  // on rank 0: every rank's outcomes; empty on the other ranks
};
// The whole fleet: across MPI ranks when started by mpirun (MPI_Init .. MPI_Finalize inside), else here.
// threads <= 0: this machine's cores split between its ranks. progress: one line on stderr (rank 0) with
// people done / total, rate and ETA.
Run run(const Options& o, const std::vector<Person>& people, int threads, bool progress);

nlohmann::json to_json(const Outcome& o);

// `heirloom bench fleet`: people per hour per core, the registry's write throughput, and the extrapolation.
struct BenchOptions {
  std::string base, corpus_dir, work_dir;  // work_dir: synthetic people and registries (default: a temporary folder, removed)
  int people = 200, steps = 100, eval_tokens = 2048;
  int min_kb = 6, max_kb = 24;                 // each synthetic person's text, cut from the person corpora
  std::vector<int> writers = {1, 2, 4, 8};     // concurrent writer processes
  int commits_per_writer = 50;
  std::string postgres;                        // also measure writes to this server's database (a URL)
  Precision precision = Precision::automatic;
  int64_t school = 215000;                     // people to extrapolate to
  bool progress = true;
};
struct BenchReport {
  int people = 0, trained = 0, failed = 0, threads = 0;
  double seconds = 0, people_per_hour_per_core = 0, seconds_per_person_core = 0;
  struct Writers {
    std::string registry;  // sqlite or postgresql
    int writers = 0, commits = 0;
    double seconds = 0, commits_per_second = 0;
  };
  std::vector<Writers> registry;
  int64_t school = 0;
  double school_core_hours = 0, cores_for_daily_refresh = 0;
};
BenchReport bench(const BenchOptions& o);

}  // namespace heirloom::fleet
