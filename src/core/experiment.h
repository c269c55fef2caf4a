// A/B trials of a change on a noisy machine. This project's VM runs the same build 10–20 % faster or slower from
// one stretch of seconds to the next, so two builds timed in turn cannot show a change of a few per cent. A trial
// instead puts the change under `if (experiment("name"))` in a local build, and `heirloom bench --experiment name`
// alternates the protocol's steps without it (A) and with it (B) inside one process, each pair on the same
// window: both halves meet the same stretches of the machine (bench/RESULTS.md, "fourth session").
#pragma once
#include <string>

namespace heirloom {

// True while a step of the trial of `name` runs with the change (a B step); false otherwise, and always outside
// a trial. Read it where the change is made, on any thread: the trial sets it between steps.
bool experiment(const char* name);

// The trial of `name` in its B half (on) or its A half (off); an empty name ends it.
void set_experiment(const std::string& name, bool on);

// Whether any code asked experiment(name) while the trial of `name` was on, since that name was last set: false
// after a trial means no B step ran a change (a binary built without the hook, or a name spelled otherwise),
// and its B/A is a null trial's.
bool experiment_reached();

}  // namespace heirloom
