// Fleet trainings in the registry (issue 10). See include/heirloom/estate.h.
#include "core/clock.h"
#include "estate/registry_impl.h"
#include "heirloom/error.h"

namespace heirloom::estate {

namespace {

const char* kTrainingColumns = "person, text_sha256, base_fingerprint, recipe, adapter, report, finished";

TrainingRecord training_row(const sql::Stmt& s) {
  return {{s.text(0), s.text(1), s.text(2), s.text(3)}, s.text(4), s.text(5), s.text(6)};
}

}  // namespace

std::optional<TrainingRecord> Registry::training(const TrainingKey& k) const {
  sql::Stmt s(impl_->db, std::string("SELECT ") + kTrainingColumns +
                             " FROM trainings WHERE person = ? AND text_sha256 = ? AND base_fingerprint = ? AND recipe = ?");
  s.bind(1, k.person).bind(2, k.text_sha256).bind(3, k.base_fingerprint).bind(4, k.recipe);
  if (!s.step()) return std::nullopt;
  return training_row(s);
}

std::vector<TrainingRecord> Registry::trainings(const std::string& person) const {
  std::vector<TrainingRecord> out;
  sql::Stmt s(impl_->db, std::string("SELECT ") + kTrainingColumns + " FROM trainings" +
                             (person.empty() ? "" : " WHERE person = ?") + " ORDER BY finished, person");
  if (!person.empty()) s.bind(1, person);
  while (s.step()) out.push_back(training_row(s));
  return out;
}

TrainingRecord Registry::commit_training(const TrainingKey& k, const std::vector<uint8_t>& adapter_file, const KeyPair& key,
                                         const std::string& report_json, bool* fresh) {
  if (fresh) *fresh = false;
  sql::Transaction t(impl_->db);
  if (std::optional<TrainingRecord> done = training(k)) return *done;
  const std::string pub = to_hex(key.public_key.data(), key.public_key.size());
  if (const std::optional<Person> p = person(k.person)) {
    if (p->public_key != pub)
      throw Error("the key for " + k.person + " is not the one the registry holds for them",
                  "a person keeps one key: pass the key folder their key was made in (--keys)");
  } else {
    insert_person(k.person, pub);
  }
  const AdapterRecord a = insert_adapter(adapter_file, key, k.person, "fleet");
  TrainingRecord r{k, a.id, report_json, utc_now_iso8601()};
  sql::Stmt(impl_->db, std::string("INSERT INTO trainings(") + kTrainingColumns + ") VALUES(?, ?, ?, ?, ?, ?, ?)")
      .bind(1, k.person).bind(2, k.text_sha256).bind(3, k.base_fingerprint).bind(4, k.recipe).bind(5, r.adapter)
      .bind(6, r.report).bind(7, r.finished).run();
  t.commit();
  if (fresh) *fresh = true;
  return r;
}

}  // namespace heirloom::estate
