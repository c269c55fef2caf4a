// The fleet across MPI ranks (issue 10): rank 0 deals people out one at a time, largest text first, to
// whichever rank asks next (dynamic balancing: texts differ in size), and trains too, on a thread of its
// own. Each rank commits what it finishes to the shared registry itself, so a rank that dies loses only
// the person it was training; a rerun skips everyone already current.
#include "core/progress.h"
#include "heirloom/fleet.h"

#include <chrono>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>
#include <nlohmann/json.hpp>

#include "heirloom/error.h"
#include "heirloom/threads.h"

#ifdef HEIRLOOM_HAVE_MPI
#include <mpi.h>
#endif

namespace heirloom::fleet {

using nlohmann::json;

bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  return false;
}

json to_json(const Outcome& o) {
  return {{"person", o.person}, {"status", status_name(o.status)}, {"adapter", o.adapter}, {"error", o.error},
          {"seconds", o.seconds}, {"personal_ppl_before", o.personal_before}, {"personal_ppl_after", o.personal_after},
          {"general_ppl_before", o.general_before}, {"general_ppl_after", o.general_after}};
}

Outcome outcome_from_json(const json& j) {
  Outcome o;
  o.person = j.at("person"), o.adapter = j.at("adapter"), o.error = j.at("error");
  const std::string st = j.at("status");
  o.status = st == "trained" ? Outcome::trained : st == "current" ? Outcome::current : Outcome::failed;
  o.seconds = j.at("seconds");
  o.personal_before = j.at("personal_ppl_before"), o.personal_after = j.at("personal_ppl_after");
  o.general_before = j.at("general_ppl_before"), o.general_after = j.at("general_ppl_after");
  return o;
}

#ifndef HEIRLOOM_HAVE_MPI

namespace {
Run run_mpi(const Options&, const std::vector<Person>&, int, const OnDone&) {
  throw Error("this heirloom was built without MPI", "install libopenmpi-dev (scripts/setup does) and rebuild");
}
}  // namespace

#else

namespace {

constexpr int kTagReady = 1, kTagAssign = 2;

void send_ready(const std::string& payload) {
  MPI_Send(payload.data(), (int)payload.size(), MPI_CHAR, 0, kTagReady, MPI_COMM_WORLD);
}

// Ranks sharing this machine, for the default thread count (the cores split between them).
int ranks_on_this_node() {
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

// A worker rank: ask, train, report, until told to stop.
void serve_rank(const Options& o, const std::vector<Person>& people) {
  std::unique_ptr<Worker> w;
  std::string report;
  try {
    w = std::make_unique<Worker>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fleet rank: cannot start: %s\n", e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  for (;;) {
    send_ready(report);
    int index = -1;
    MPI_Recv(&index, 1, MPI_INT, 0, kTagAssign, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (index < 0) return;
    report = to_json(w->run(people[index])).dump();
  }
}

Run run_mpi(const Options& o, const std::vector<Person>& people, int threads, const OnDone& on_done) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);  // only the main thread calls MPI
  Run run;
  MPI_Comm_rank(MPI_COMM_WORLD, &run.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &run.ranks);
  run.threads = threads > 0 ? threads : std::max(1, (int)std::thread::hardware_concurrency() / ranks_on_this_node());
  set_num_threads(run.threads);
  if (run.rank != 0) {
    serve_rank(o, people);
    MPI_Finalize();
    return run;
  }
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> order = dealing_order(people);
  std::mutex mu;
  size_t next = 0;
  std::deque<Outcome> local_done;
  auto take = [&]() -> int {
    std::lock_guard<std::mutex> lock(mu);
    return next < order.size() ? order[next++] : -1;
  };
  auto record = [&](Outcome r) {
    run.summary.add(std::move(r));
    if (on_done) on_done(run.summary);
  };
  // Rank 0 trains too, on its own thread; its OpenMP pool is that thread's (the main thread only waits on MPI).
  std::string local_error;
  std::thread local([&] {
    set_num_threads(run.threads);
    try {
      Worker w(o);
      for (int i = take(); i >= 0; i = take()) {
        Outcome r = w.run(people[i]);
        std::lock_guard<std::mutex> lock(mu);
        local_done.push_back(std::move(r));
      }
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> lock(mu);
      local_error = e.what();
    }
  });
  run.summary.total = (int)people.size();
  int stopped = 0;
  std::vector<char> buf;
  while (stopped < run.ranks - 1) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagReady, MPI_COMM_WORLD, &flag, &st);
    if (flag) {
      int n = 0;
      MPI_Get_count(&st, MPI_CHAR, &n);
      buf.resize(std::max(1, n));
      MPI_Recv(buf.data(), n, MPI_CHAR, st.MPI_SOURCE, kTagReady, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
      if (n > 0) record(outcome_from_json(json::parse(std::string(buf.data(), n))));
      const int index = take();
      MPI_Send(&index, 1, MPI_INT, st.MPI_SOURCE, kTagAssign, MPI_COMM_WORLD);
      if (index < 0) ++stopped;
    }
    std::deque<Outcome> mine;
    {
      std::lock_guard<std::mutex> lock(mu);
      mine.swap(local_done);
    }
    for (Outcome& r : mine) record(std::move(r));
    if (!flag) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // no busy wait beside the trainers
  }
  local.join();
  for (Outcome& r : local_done) record(std::move(r));
  run.summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MPI_Finalize();
  if (!local_error.empty()) throw Error("fleet: rank 0 could not train: " + local_error);
  return run;
}

}  // namespace

#endif

Run run(const Options& o, const std::vector<Person>& people, int threads, bool progress) {
  Progress bar((long)people.size(), "fleet", "people", progress);
  auto on_done = [&](const Summary& s) {
    if (s.outcomes.size() < people.size()) bar.update((long)s.outcomes.size(), s.counts());  // the last line is finish()'s
  };
  Run r;
  if (launched_by_mpi()) {
    r = run_mpi(o, people, threads, on_done);
    if (r.rank != 0) return r;
  } else {
    if (threads > 0) set_num_threads(threads);
    r.threads = num_threads();
    r.summary = run_local(o, people, on_done);
  }
  bar.finish(r.summary.counts());
  return r;
}

}  // namespace heirloom::fleet
