// The fleet's manifest (JSON lines), its dealing order, the recipe and the text hash. See heirloom/fleet.h.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>
#include <nlohmann/json.hpp>

#include "core/sha256.h"
#include "heirloom/error.h"
#include "heirloom/fleet.h"
#include "heirloom/text.h"

namespace heirloom::fleet {

namespace fs = std::filesystem;
using nlohmann::json;

std::vector<Person> read_manifest(const std::string& path, AdapterKind default_kind) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read the manifest " + path, "give a JSON-lines file: one {\"id\": ..., \"text\": [...]} per person");
  const fs::path dir = fs::path(path).parent_path();
  std::vector<Person> out;
  std::set<std::string> seen;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string at = path + ":" + std::to_string(n) + ": ";
    const std::string hint = R"(each line is like {"id": "s00001", "text": ["essay1.txt", "essay2.txt"], "kind": "norm"})";
    const json j = json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(at + "not a JSON object", hint);
    Person p;
    p.line = n;
    if (!j.contains("id") || !j["id"].is_string() || j["id"].get<std::string>().empty())
      throw Error(at + "\"id\" (a non-empty string) is missing", hint);
    p.id = j["id"];
    try {
      estate::check_person_name(p.id);  // before it names a key file
    } catch (const Error& e) {
      throw Error(at + e.what(), e.hint());
    }
    if (!seen.insert(p.id).second) throw Error(at + "the id '" + p.id + "' appears twice", "each person has one line");
    const json t = j.value("text", json());
    if (t.is_string()) p.texts.push_back(t);
    else if (t.is_array() && !t.empty() && std::all_of(t.begin(), t.end(), [](const json& e) { return e.is_string(); }))
      for (const json& e : t) p.texts.push_back(e);
    else throw Error(at + "\"text\" must be a file name or a non-empty list of them", hint);
    for (std::string& f : p.texts) {
      if (fs::path(f).is_relative()) f = (dir / f).string();
      std::error_code ec;
      const auto size = fs::file_size(f, ec);
      if (!ec) p.text_bytes += (int64_t)size;
    }
    p.kind = j.contains("kind") ? parse_adapter_kind(j.value("kind", "")) : default_kind;
    out.push_back(std::move(p));
  }
  if (out.empty()) throw Error("the manifest " + path + " names nobody", "add one JSON line per person");
  return out;
}

std::vector<int> dealing_order(const std::vector<Person>& people) {
  std::vector<int> order(people.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return people[a].text_bytes > people[b].text_bytes; });
  return order;
}

std::string recipe_json(const PersonalizeOptions& p, AdapterKind kind, Precision resolved) {
  json j = {{"kind", kind_name(kind)}, {"steps", p.steps}, {"batch", p.batch}, {"seq", p.seq},
            {"lr", p.lr > 0 ? p.lr : default_lr(kind)}, {"seed", p.seed}, {"precision", precision_name(resolved)}};
  if (kind == AdapterKind::lora) {
    json targets = json::array();
    for (bool t : p.lora.targets) targets.push_back(t);
    j["lora"] = {{"rank", p.lora.rank}, {"alpha", p.lora.alpha}, {"targets", targets}};
  }
  return j.dump();  // nlohmann sorts object keys: one spelling per recipe
}

std::string text_sha256(const std::vector<std::string>& files) {
  Sha256 h;
  for (const std::string& f : files) {
    const std::string text = read_text_file(f);
    const std::string len = std::to_string(text.size()) + ":";
    h.update(len);
    h.update(text);
  }
  return h.hex();
}

const char* status_name(Outcome::Status s) {
  switch (s) {
    case Outcome::trained: return "trained";
    case Outcome::current: return "current";
    case Outcome::failed: return "failed";
  }
  return "?";
}

}  // namespace heirloom::fleet
