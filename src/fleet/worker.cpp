// One person's fleet job: current already? else personalise, then commit person + adapter + training in one
// registry transaction. See heirloom/fleet.h.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "heirloom/error.h"
#include "heirloom/fleet.h"
#include "heirloom/text.h"

namespace heirloom::fleet {

namespace fs = std::filesystem;

struct Worker::Impl {
  Options opt;
  Model base;
  std::string fingerprint;
  Precision precision;
  estate::Registry registry;
  fs::path scratch;  // adapters are written here, read back as bytes, and removed
  Impl(const Options& o)
      : opt(o), base(load_model(o.base)), fingerprint(base.fingerprint()),
        precision(resolve_precision(o.recipe.precision)), registry(estate::Registry::create(o.registry)),
        scratch(fs::temp_directory_path() / ("heirloom-fleet-" + std::to_string(::getpid()))) {
    fs::create_directories(scratch);
  }
  ~Impl() {
    std::error_code ec;
    fs::remove_all(scratch, ec);
  }
  estate::KeyPair key_of(const std::string& person);
};

// The person's key: theirs from the key folder, or a new one when they are not in the registry yet.
estate::KeyPair Worker::Impl::key_of(const std::string& person) {
  const std::string path = (fs::path(opt.key_dir) / (person + ".key")).string();
  if (fs::exists(path)) return estate::load_secret_key(path);
  if (registry.person(person))
    throw Error(person + " is in the registry but their key is not in " + opt.key_dir, "pass the key folder they were made with (--keys)");
  estate::KeyPair k = estate::generate_key();
  try {
    estate::save_secret_key(k, path);
  } catch (const Error&) {
    if (!fs::exists(path)) throw;
    return estate::load_secret_key(path);  // made a moment ago by another run: use that one
  }
  return k;
}

Worker::Worker(const Options& o) : impl_(std::make_unique<Impl>(o)) {}
Worker::~Worker() = default;

Outcome Worker::run(const Person& p) {
  Impl& s = *impl_;
  const auto t0 = std::chrono::steady_clock::now();
  Outcome out;
  out.person = p.id;
  auto finish = [&](Outcome::Status st) {
    out.status = st;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return out;
  };
  try {
    const estate::TrainingKey key{p.id, text_sha256(p.texts), s.fingerprint, recipe_json(s.opt.recipe, p.kind, s.precision)};
    if (const auto done = s.registry.training(key)) {
      out.adapter = done->adapter;
      return finish(Outcome::current);
    }
    PersonalizeOptions po = s.opt.recipe;
    po.texts = p.texts;
    po.kind = p.kind;
    po.owner = p.id;
    po.progress = false;
    po.precision = s.precision;
    Adapter adapter = make_adapter(s.base, p.kind, po.lora, po.seed);
    const PersonalizeReport r = personalize(s.base, adapter, po);
    const fs::path file = s.scratch / (p.id + ".gguf");
    save_adapter(adapter, s.base.config, file.string(), StorageType::f16);
    const std::string bytes = read_text_file(file.string());
    fs::remove(file);
    const nlohmann::json report = {{"personal_ppl_before", r.personal_before}, {"personal_ppl_after", r.personal_after},
                                   {"general_ppl_before", r.general_before}, {"general_ppl_after", r.general_after},
                                   {"verdict", r.verdict}, {"train_seconds", r.train_seconds}, {"steps", r.steps},
                                   {"train_tokens", r.train_tokens}};
    bool fresh = false;
    const estate::TrainingRecord rec = s.registry.commit_training(key, std::vector<uint8_t>(bytes.begin(), bytes.end()),
                                                                  s.key_of(p.id), report.dump(), &fresh);
    out.adapter = rec.adapter;
    out.personal_before = r.personal_before, out.personal_after = r.personal_after;
    out.general_before = r.general_before, out.general_after = r.general_after;
    return finish(fresh ? Outcome::trained : Outcome::current);
  } catch (const std::exception& e) {
    out.error = e.what();
    if (const auto* he = dynamic_cast<const Error*>(&e); he && !he->hint().empty()) out.error += " (" + he->hint() + ")";
    return finish(Outcome::failed);
  }
}

void Summary::add(Outcome r) {
  (r.status == Outcome::trained ? trained : r.status == Outcome::current ? current : failed)++;
  outcomes.push_back(std::move(r));
}

std::string Summary::counts() const {
  return std::to_string(trained) + " trained, " + std::to_string(current) + " current, " + std::to_string(failed) + " failed";
}

Summary run_local(const Options& o, const std::vector<Person>& people, const OnDone& on_done) {
  const auto t0 = std::chrono::steady_clock::now();
  Worker w(o);
  Summary sum;
  sum.total = (int)people.size();
  for (int i : dealing_order(people)) {
    sum.add(w.run(people[i]));
    if (on_done) on_done(sum);
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace heirloom::fleet
