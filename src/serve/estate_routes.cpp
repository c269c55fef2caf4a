// The estate API the page uses: people, adapters, lineage, designations, the overlap report before an
// inheritance (in plain words), the inheritance itself (consent checked by the registry), and the bets'
// results. Reads of a private person's adapters need their read token; writes need the server's token.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/clock.h"
#include "heirloom/inherit.h"
#include "heirloom/overlap.h"
#include "heirloom/text.h"
#include "serve/server_impl.h"

namespace heirloom::serve {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string string_field(const json& body, const char* name) {
  if (!body.contains(name) || !body[name].is_string() || body[name].get<std::string>().empty())
    throw HttpError(400, std::string("'") + name + "' is required (a string)");
  return body[name].get<std::string>();
}

estate::AdapterRecord find(Server::Impl& s, const Caller& who, const std::string& name) {
  estate::AdapterRecord rec;
  try {
    rec = s.reg().resolve(name);
  } catch (const Error& e) {
    throw HttpError(404, e.what(), "GET /estate/adapters lists them");
  }
  if (!s.may_read(who, rec.owner)) throw HttpError(403, rec.owner + "'s adapters are private", "send their read token");
  return rec;
}

estate::KeyPair key_of(const Server::Impl& s, const std::string& person) {
  const std::string dir = s.opt.key_dir.empty() ? estate::default_key_dir() : s.opt.key_dir;
  try {
    return estate::load_secret_key(dir + "/" + person + ".key");
  } catch (const Error& e) {
    throw HttpError(409, "the server cannot sign for " + person + ": " + e.what(), "the key must be in " + dir);
  }
}

// The overlap report a successor reads before accepting, with what each choice costs and keeps.
json overlap_report(Server::Impl& s, const estate::AdapterRecord& parent_rec, const estate::AdapterRecord& child_rec,
                    const Adapter& parent, const Adapter& child, bool keep_both, inherit::Scheme* chosen,
                    inherit::OverlapReport* report = nullptr) {
  const Adapter& body = parent.routed() ? parent.branches.back() : parent;
  const inherit::OverlapReport ov = inherit::overlap(body, child, s.base.config);
  if (report) *report = ov;
  std::string why;
  inherit::Scheme scheme = inherit::recommend(ov, keep_both, &why);
  if (parent.routed() && scheme.name != "concat") {
    scheme = inherit::parse_scheme("concat");
    why = "the parent's adapter is itself a concatenated heir; only concatenation extends it (one more branch)";
  }
  if (chosen) *chosen = scheme;
  json j = inherit::to_json(ov);
  j["parent"] = estate::to_json(parent_rec);
  j["child"] = estate::to_json(child_rec);
  j["recommended"] = {{"scheme", scheme.spec()}, {"describe", scheme.describe()}, {"why", why}};
  const int64_t one = std::max(parent_rec.bytes, child_rec.bytes), both = parent_rec.bytes + child_rec.bytes;
  j["memory"] = {{"single_adapter_bytes", one}, {"concat_bytes", both}};
  char b[512];
  std::vector<std::string> words;
  std::snprintf(b, sizeof b, "%s's adapter and %s's are %s: the cosine of their changes to the base is %.2f (below %.2f counts as orthogonal, from %.2f as aligned).",
                parent_rec.owner.c_str(), child_rec.owner.c_str(), ov.regime.c_str(), ov.cosine, ov.partial_from, ov.aligned_from);
  words.push_back(b);
  std::snprintf(b, sizeof b, "Recommended: %s (%s), because %s.", scheme.spec().c_str(), scheme.describe().c_str(), why.c_str());
  words.push_back(b);
  for (const auto& [name, v] : ov.predicted.items()) {
    std::snprintf(b, sizeof b, "%s would keep about %.0f%% of %s's skill and %.0f%% of %s's%s.", name.c_str(),
                  100 * v["parent_ratio"].get<double>(), parent_rec.owner.c_str(), 100 * v["child_ratio"].get<double>(),
                  child_rec.owner.c_str(), name == "concat" ? ", keeping both adapters whole" : "");
    words.push_back(b);
  }
  std::snprintf(b, sizeof b, "Memory: one merged adapter takes %lld bytes; concatenation keeps both, %lld bytes, and routes each prompt to one.",
                (long long)one, (long long)both);
  words.push_back(b);
  words.push_back("Predictions read off the synthetic Bet 69 curves at this cosine; heirloom inherit --parent-text measures the real retention.");
  j["summary"] = words;
  return j;
}

Adapter load(Server::Impl& s, const estate::AdapterRecord& r) {
  return load_adapter_bytes(s.reg().file(r.id), "adapter " + r.id.substr(0, 12), s.base);
}

}  // namespace

void add_estate_routes(Server::Impl& s) {
  s.http.Get("/estate/people", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    std::lock_guard<std::mutex> lock(s.registry_mu);
    json out = json::array();
    for (const estate::Person& p : s.reg().people()) {
      json adapters = json::array();
      const bool readable = s.may_read(who, p.name);
      if (readable)
        for (const auto& a : s.reg().adapters(p.name)) adapters.push_back(estate::to_json(a));
      out.push_back({{"name", p.name}, {"public_key", p.public_key}, {"created", p.created},
                     {"private", s.opt.private_people.count(p.name) > 0}, {"readable", readable}, {"adapters", adapters}});
    }
    send_json(res, out);
  }));
  s.http.Get("/estate/adapters", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    std::lock_guard<std::mutex> lock(s.registry_mu);
    json out = json::array();
    for (const auto& a : s.reg().adapters(req.get_param_value("owner")))
      if (s.may_read(who, a.owner)) out.push_back(estate::to_json(a));
    send_json(res, out);
  }));
  s.http.Get(R"(/estate/adapters/([0-9A-Za-z_.\-]+))", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    std::lock_guard<std::mutex> lock(s.registry_mu);
    const estate::AdapterRecord r = find(s, who, req.matches[1]);
    json j = estate::ancestry(s.reg(), r);
    j["designations"] = json::array();
    for (const auto& d : s.reg().designations(r.id)) j["designations"].push_back({{"successor", d.successor}, {"created", d.created}});
    j["verified"] = s.reg().verify(r.id).ok();
    send_json(res, j);
  }));
  // Every adapter as a node and every inheritance as edges from its parent and child: the lineage tree.
  s.http.Get("/estate/lineage", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    std::lock_guard<std::mutex> lock(s.registry_mu);
    json nodes = json::array(), edges = json::array();
    for (const auto& a : s.reg().adapters()) {
      if (!s.may_read(who, a.owner)) continue;
      json n = estate::to_json(a);
      n.erase("signature");
      if (const auto l = s.reg().lineage(a.id)) {
        n["scheme"] = l->scheme, n["regime"] = l->regime, n["overlap"] = l->overlap;
        if (!l->parent.empty()) edges.push_back({{"from", l->parent}, {"to", a.id}, {"role", "parent"}});
        if (!l->child.empty()) edges.push_back({{"from", l->child}, {"to", a.id}, {"role", "child"}});
      }
      nodes.push_back(n);
    }
    send_json(res, {{"nodes", nodes}, {"edges", edges}});
  }));
  s.http.Get("/estate/designations", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    std::lock_guard<std::mutex> lock(s.registry_mu);
    json out = json::array();
    for (const auto& d : s.reg().designations())
      if (s.may_read(who, d.owner))
        out.push_back({{"adapter", d.adapter}, {"owner", d.owner}, {"successor", d.successor}, {"created", d.created}});
    send_json(res, out);
  }));

  s.http.Post("/estate/overlap", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const Caller who = s.caller(req);
    const json body = parse_body(req);
    std::lock_guard<std::mutex> lock(s.registry_mu);
    const estate::AdapterRecord p = find(s, who, string_field(body, "parent")), c = find(s, who, string_field(body, "child"));
    send_json(res, overlap_report(s, p, c, load(s, p), load(s, c), body.value("keep_both", false), nullptr));
  }));

  // Accepting an inheritance: the registry checks consent (a designated successor) and integrity; the heir
  // is made by the chosen (or recommended) scheme, signed with the successor's key and stored with its lineage.
  s.http.Post("/estate/inherit", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    s.require_admin(req);
    const json body = parse_body(req);
    const std::string successor = string_field(body, "successor");
    std::lock_guard<std::mutex> lock(s.registry_mu);
    const Caller admin{true, ""};
    const estate::AdapterRecord prec = find(s, admin, string_field(body, "parent"));
    const estate::AdapterRecord crec = find(s, admin, body.value("child", successor));
    if (crec.owner != successor)
      throw HttpError(400, "the child's adapter belongs to " + crec.owner + ", not to " + successor, "pick " + successor + "'s own adapter");
    const estate::KeyPair key = key_of(s, successor);
    std::vector<uint8_t> parent_file;
    try {
      parent_file = s.reg().file_for_inheritance(prec.id, successor);
    } catch (const Error& e) {
      throw HttpError(403, e.what(), e.hint());
    }
    const Adapter parent = load_adapter_bytes(std::move(parent_file), "adapter " + prec.id.substr(0, 12), s.base);
    Adapter child = load(s, crec);
    child.info.owner = successor;
    inherit::Scheme scheme;
    inherit::OverlapReport ov;
    const json report = overlap_report(s, prec, crec, parent, child, body.value("keep_both", false), &scheme, &ov);
    const std::string asked = body.value("scheme", "auto");
    if (asked != "auto") scheme = inherit::parse_scheme(asked);
    if (scheme.name == "distill")
      throw HttpError(400, "distill trains on the successor's text, which the server does not hold", "use `heirloom inherit --scheme distill`");
    Adapter heir = inherit::merge_heir(parent, child, scheme, s.base.config, ov);
    heir.info.owner = successor;
    heir.info.created = utc_now_iso8601();
    const std::string tmp = (fs::temp_directory_path() / ("heirloom-heir-" + std::to_string(getpid()) + "-" + std::to_string(s.next_id++) + ".gguf")).string();
    save_adapter(heir, s.base.config, tmp, StorageType::f16);
    std::ifstream in(tmp, std::ios::binary);
    const std::vector<uint8_t> bytes{std::istreambuf_iterator<char>(in), {}};
    in.close();
    fs::remove(tmp);
    const estate::AdapterRecord stored = s.reg().add_adapter(bytes, key, successor, body.value("label", "heir of " + prec.owner));
    send_json(res, {{"accepted", true}, {"heir", estate::to_json(stored)}, {"scheme", scheme.spec()}, {"report", report}}, 201);
  }));

  s.http.Post("/estate/designate", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    s.require_admin(req);
    const json body = parse_body(req);
    std::lock_guard<std::mutex> lock(s.registry_mu);
    const estate::AdapterRecord a = find(s, Caller{true, ""}, string_field(body, "adapter"));
    const estate::Designation d = s.reg().designate(a.id, string_field(body, "successor"), key_of(s, a.owner));
    send_json(res, {{"adapter", d.adapter}, {"owner", d.owner}, {"successor", d.successor}, {"created", d.created}}, 201);
  }));
  // An adapter file as the body (application/octet-stream), ?owner=NAME&label=TEXT.
  s.http.Post("/estate/adapters", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    s.require_admin(req);
    const std::vector<uint8_t> bytes(req.body.begin(), req.body.end());
    const AdapterHeader h = read_adapter_header(bytes, "the uploaded file");
    const std::string owner = req.has_param("owner") ? req.get_param_value("owner") : h.info.owner;
    if (owner.empty()) throw HttpError(400, "the adapter names no owner", "pass ?owner=NAME");
    load_adapter_bytes(bytes, "the uploaded file", s.base);  // made for this base, and intact
    std::lock_guard<std::mutex> lock(s.registry_mu);
    const estate::AdapterRecord r = s.reg().add_adapter(bytes, key_of(s, owner), owner, req.get_param_value("label"));
    send_json(res, estate::to_json(r), 201);
  }));

  // The bets' results: the summary of each, and its plot.
  s.http.Get("/estate/bets", guarded([&s](const httplib::Request&, httplib::Response& res) {
    json out = json::array();
    std::error_code ec;
    if (!s.opt.results_dir.empty() && fs::is_directory(s.opt.results_dir, ec)) {
      std::vector<fs::path> files;
      for (const auto& e : fs::directory_iterator(s.opt.results_dir, ec))
        if (e.path().extension() == ".json") files.push_back(e.path());
      std::sort(files.begin(), files.end());
      for (const fs::path& f : files) {
        const json j = json::parse(read_text_file(f.string()), nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        out.push_back({{"id", f.stem().string()}, {"bet", j.value("bet", 0)}, {"name", j.value("name", f.stem().string())},
                       {"summary_line", j.value("summary_line", "")}, {"quick", j.value("quick", false)},
                       {"plot", fs::exists(fs::path(f).replace_extension(".svg")) ? "/estate/bets/" + f.stem().string() + ".svg" : ""}});
      }
    }
    send_json(res, out);
  }));
  s.http.Get(R"(/estate/bets/([0-9A-Za-z_\-]+)\.(svg|json))", guarded([&s](const httplib::Request& req, httplib::Response& res) {
    const fs::path f = fs::path(s.opt.results_dir) / (std::string(req.matches[1]) + "." + std::string(req.matches[2]));
    std::error_code ec;
    if (s.opt.results_dir.empty() || !fs::is_regular_file(f, ec)) throw HttpError(404, "no such bet result: " + f.filename().string());
    res.set_content(read_text_file(f.string()), req.matches[2] == "svg" ? "image/svg+xml" : "application/json");
  }));
}

}  // namespace heirloom::serve
