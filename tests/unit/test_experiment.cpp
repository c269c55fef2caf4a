// core/experiment.h and the trial `heirloom bench --experiment` runs: the switch is on only for its own name and
// only while a trial's B step runs, and a trial alternates its steps between off and on.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/experiment.h"
#include "heirloom/bench.h"

namespace heirloom {
namespace {

TEST(Experiment, OnOnlyForItsOwnNameWhileOn) {
  EXPECT_FALSE(experiment("probe"));
  set_experiment("probe", true);
  EXPECT_TRUE(experiment("probe"));
  EXPECT_FALSE(experiment("other"));
  set_experiment("probe", false);
  EXPECT_FALSE(experiment("probe"));
  set_experiment("", true);  // an empty name is no trial
  EXPECT_FALSE(experiment(""));
  set_experiment("", false);
}

// A trial knows whether anything asked for it while on: a hook that never runs (a binary built without it) makes
// A and B the same code, and the report says so.
TEST(Experiment, ReachedOnlyWhenItsNameIsAskedWhileOn) {
  set_experiment("probe", false);
  EXPECT_FALSE(experiment("probe"));
  EXPECT_FALSE(experiment_reached());  // asked, but off
  set_experiment("probe", true);
  EXPECT_FALSE(experiment("other"));
  EXPECT_FALSE(experiment_reached());  // on, but another name asked
  EXPECT_TRUE(experiment("probe"));
  EXPECT_TRUE(experiment_reached());
  set_experiment("", false);  // the trial over: what it reached is still there to report
  EXPECT_TRUE(experiment_reached());
  set_experiment("next", true);  // a new trial starts unreached
  EXPECT_FALSE(experiment_reached());
  set_experiment("", false);
}

// A thread watching the switch during a trial sees it turn on and off many times (100 steps, every other one
// on), and off once the trial is over. The trial's report pairs its 100 steps: 50 pairs less the 9 whose first
// step follows a ceiling measurement.
TEST(Experiment, BenchTrialAlternatesStepsOffAndOn) {
  BenchOptions o;
  o.preset = "tiny";
  o.only = {"personalize"};
  o.precision = "fp32";
  o.repeats = 1;
  o.experiment = "probe";
  std::atomic<bool> done{false};
  int changes = 0;
  std::thread watcher([&] {
    for (bool last = false; !done.load();) {
      const bool now = experiment("probe");
      changes += now != last;
      last = now;
    }
  });
  const BenchReport r = run_bench(o, false);
  done = true;
  watcher.join();
  EXPECT_GE(changes, 10);  // on for the whole trial would be 2
  EXPECT_FALSE(experiment("probe"));
  ASSERT_EQ(r.rows.size(), 1u);
  const BenchRow& row = r.rows[0];
  EXPECT_EQ(row.step_ms.size(), 100u);
  EXPECT_EQ(row.experiment_pairs, 41);
  EXPECT_GT(row.experiment_ratio, 0.0);
  EXPECT_GT(row.experiment_a_ms, 0.0);
  EXPECT_GT(row.experiment_b_ms, 0.0);
  EXPECT_TRUE(row.experiment_reached);  // the watcher asked for it
  // No code asks for this one: a null trial, and the row says so.
  o.experiment = "nothing-asks";
  const BenchReport null_trial = run_bench(o, false);
  ASSERT_EQ(null_trial.rows.size(), 1u);
  EXPECT_EQ(null_trial.rows[0].experiment_pairs, 41);
  EXPECT_FALSE(null_trial.rows[0].experiment_reached);
}

}  // namespace
}  // namespace heirloom
