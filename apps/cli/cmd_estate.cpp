// `heirloom estate …`: the registry of people, their signed adapters, lineage and designated successors.
#include <cstdio>
#include <filesystem>
#include <string_view>

#include "commands.h"
#include "heirloom/error.h"
#include "heirloom/estate.h"
#include "heirloom/serve.h"
#include "heirloom/text.h"

namespace heirloom::cli {

std::string key_path(const std::string& given, const std::string& person) {
  return given.empty() ? estate::default_key_dir() + "/" + person + ".key" : given;
}

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  const std::string s = read_text_file(path);  // any bytes; clear errors for a missing file or a folder
  return {s.begin(), s.end()};
}

namespace {

using estate::AdapterRecord;
using estate::Registry;
using estate::to_json;
using estate::ancestry;

std::string short_id(const std::string& id) { return id.substr(0, 12); }

std::string describe(const AdapterRecord& r) {
  return short_id(r.id) + "  " + r.owner + "  " + r.kind + "  gen " + std::to_string(r.generation) + "  " +
         std::to_string(r.bytes) + " B" + (r.label.empty() ? "" : "  \"" + r.label + "\"");
}

void print_tree(const nlohmann::json& j, const std::string& indent, const std::string& role) {
  std::string line = indent + role;
  if (j.value("in_registry", true))
    line += j["id"].get<std::string>().substr(0, 12) + "  " + j["owner"].get<std::string>() + "  " + j["kind"].get<std::string>() +
            "  gen " + std::to_string(j["generation"].get<int>());
  else
    line += j["params_sha256"].get<std::string>().substr(0, 12) + "  " + j["owner"].get<std::string>() + "  (not in this registry)";
  if (j.contains("scheme"))
    line += "  <- " + j["scheme"].get<std::string>() + ", " + j["regime"].get<std::string>() + " (overlap " +
            std::to_string(j["overlap"].get<double>()).substr(0, 5) + ")";
  std::printf("%s\n", line.c_str());
  if (j.contains("parent")) {
    const std::string next = indent + (role.empty() ? "" : role == "├─ parent " ? "│  " : "   ");
    print_tree(j["parent"], next, "├─ parent ");
    print_tree(j["child"], next, "└─ child  ");
  }
}

}  // namespace

Action add_estate(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("estate", "the registry of people, their signed adapters, lineage and designated successors");
  sub->require_subcommand(1);
  struct Opts {
    std::string registry, name, key, file, owner, label, id, successor, out;
  };
  auto o = std::make_shared<Opts>();
  auto action = std::make_shared<std::function<int()>>();
  const auto common_opts = [&](CLI::App* c) {
    c->add_option("--registry", o->registry, "the registry: a SQLite file, or a PostgreSQL database as postgresql://USER@HOST/DB (default: " + estate::default_registry_path() + ")");
    add_common_flags(*c, common);
  };
  const auto reg = [o](bool create = false) {
    const std::string p = o->registry.empty() ? estate::default_registry_path() : o->registry;
    return create ? Registry::create(p) : Registry::open(p);
  };

  auto* init = sub->add_subcommand("init", "create the registry (a SQLite file, or the schema in a PostgreSQL database); harmless when it exists");
  common_opts(init);
  init->callback([=, &common] {
    *action = [=, &common] {
      const Registry r = reg(true);
      if (common.json) print_json({{"registry", r.path()}});
      else std::printf("registry ready at %s\n", r.path().c_str());
      return 0;
    };
  });

  auto* person = sub->add_subcommand("person", "people in the registry");
  person->require_subcommand(1);
  auto* padd = person->add_subcommand("add", "add a person with a new ed25519 key (the secret key is written to a file only they read)");
  padd->add_option("name", o->name, "the person's name")->required();
  padd->add_option("--key", o->key, "where to write the secret key (default: " + estate::default_key_dir() + "/NAME.key)");
  common_opts(padd);
  padd->callback([=, &common] {
    *action = [=, &common] {
      Registry r = reg();
      estate::check_person_name(o->name);  // before the name becomes a key file's
      if (r.person(o->name)) throw Error("'" + o->name + "' is already in the registry", "choose another name");
      const estate::KeyPair k = estate::generate_key();
      const std::string kp = key_path(o->key, o->name), public_key = estate::to_hex(k.public_key.data(), k.public_key.size());
      estate::save_secret_key(k, kp);
      try {
        r.add_person(o->name, public_key);
      } catch (...) {
        std::filesystem::remove(kp);  // no key without its person
        throw;
      }
      if (common.json) print_json({{"name", o->name}, {"public_key", public_key}, {"key_file", kp}});
      else std::printf("added %s (public key %s); secret key in %s\n", o->name.c_str(), public_key.c_str(), kp.c_str());
      return 0;
    };
  });

  auto* token = sub->add_subcommand("token", "print a person's read token: what `heirloom serve --private NAME` asks of them");
  token->add_option("name", o->name, "the person's name")->required();
  token->add_option("--key", o->key, "their secret key (default: " + estate::default_key_dir() + "/NAME.key)");
  common_opts(token);
  token->callback([=, &common] {
    *action = [=, &common] {
      const estate::KeyPair k = estate::load_secret_key(key_path(o->key, o->name));
      const std::string t = o->name + ":" + estate::sign_hex(k, serve::read_token_message(o->name));
      if (common.json) print_json({{"name", o->name}, {"token", t}});
      else std::printf("%s\n", t.c_str());
      return 0;
    };
  });

  auto* add = sub->add_subcommand("add", "store an adapter in the registry, signed by its owner");
  add->add_option("adapter", o->file, "the adapter file (GGUF)")->required()->check(CLI::ExistingFile);
  add->add_option("--owner", o->owner, "its owner (default: the owner written in the file)");
  add->add_option("--key", o->key, "the owner's secret key (default: " + estate::default_key_dir() + "/OWNER.key)");
  add->add_option("--label", o->label, "a short note shown in listings");
  common_opts(add);
  add->callback([=, &common] {
    *action = [=, &common] {
      Registry r = reg();
      const std::vector<uint8_t> bytes = read_file_bytes(o->file);
      const AdapterHeader h = read_adapter_header(bytes, o->file);  // a bad file is refused with its name
      const std::string owner = o->owner.empty() ? h.info.owner : o->owner;
      if (owner.empty()) throw Error(o->file + " names no owner", "pass --owner NAME");
      const AdapterRecord a = r.add_adapter(bytes, estate::load_secret_key(key_path(o->key, owner)), owner, o->label);
      if (common.json) print_json(to_json(a));
      else std::printf("stored %s\n", describe(a).c_str());
      return 0;
    };
  });

  auto* list = sub->add_subcommand("list", "people and their adapters");
  common_opts(list);
  list->callback([=, &common] {
    *action = [=, &common] {
      const Registry r = reg();
      nlohmann::json j = {{"people", nlohmann::json::array()}};
      for (const estate::Person& p : r.people()) {
        nlohmann::json pj = {{"name", p.name}, {"public_key", p.public_key}, {"created", p.created}, {"adapters", nlohmann::json::array()}};
        if (!common.json) std::printf("%s\n", p.name.c_str());
        for (const AdapterRecord& a : r.adapters(p.name)) {
          pj["adapters"].push_back(to_json(a));
          if (!common.json) std::printf("  %s\n", describe(a).c_str());
        }
        j["people"].push_back(pj);
      }
      if (common.json) print_json(j);
      return 0;
    };
  });

  auto* show = sub->add_subcommand("show", "one adapter (by id, id prefix, or its owner's name): origin, lineage, successors");
  show->add_option("adapter", o->id, "id, unique id prefix, or a person's name (their newest adapter)")->required();
  common_opts(show);
  show->callback([=, &common] {
    *action = [=, &common] {
      const Registry r = reg();
      const AdapterRecord a = r.resolve(o->id);
      nlohmann::json j = to_json(a);
      j["designated"] = nlohmann::json::array();
      for (const auto& d : r.designations(a.id)) j["designated"].push_back({{"successor", d.successor}, {"created", d.created}});
      if (const auto l = r.lineage(a.id))
        j["lineage"] = {{"parent", l->parent}, {"child", l->child}, {"parent_owner", l->parent_owner}, {"child_owner", l->child_owner},
                        {"scheme", l->scheme}, {"params", l->params}, {"overlap", l->overlap}, {"regime", l->regime}};
      if (common.json) {
        print_json(j);
        return 0;
      }
      std::printf("%s\n  id        %s\n  trained   %s\n  added     %s\n  base      %s\n  recipe    %s\n", describe(a).c_str(),
                  a.id.c_str(), a.created.c_str(), a.added.c_str(), a.base_fingerprint.c_str(), a.recipe.c_str());
      if (j.contains("lineage"))
        std::printf("  inherited %s x %s by %s (%s, overlap %.3f)\n", j["lineage"]["parent_owner"].get<std::string>().c_str(),
                    j["lineage"]["child_owner"].get<std::string>().c_str(), j["lineage"]["scheme"].get<std::string>().c_str(),
                    j["lineage"]["regime"].get<std::string>().c_str(), j["lineage"]["overlap"].get<double>());
      for (const auto& d : j["designated"]) std::printf("  successor %s (designated %s)\n", d["successor"].get<std::string>().c_str(),
                                                        d["created"].get<std::string>().c_str());
      return 0;
    };
  });

  auto* lineage = sub->add_subcommand("lineage", "an adapter's ancestry as a tree, generations deep, and the heirs made from it");
  lineage->add_option("adapter", o->id, "id, unique id prefix, or a person's name")->required();
  common_opts(lineage);
  lineage->callback([=, &common] {
    *action = [=, &common] {
      const Registry r = reg();
      const AdapterRecord a = r.resolve(o->id);
      nlohmann::json j = ancestry(r, a);
      j["heirs"] = nlohmann::json::array();
      for (const auto& h : r.heirs_of(a.id)) j["heirs"].push_back({{"id", h.heir}, {"generation", h.generation}, {"scheme", h.scheme}});
      if (common.json) {
        print_json(j);
        return 0;
      }
      print_tree(j, "", "");
      for (const auto& h : j["heirs"])
        std::printf("heir: %s (gen %d, %s)\n", h["id"].get<std::string>().substr(0, 12).c_str(), h["generation"].get<int>(),
                    h["scheme"].get<std::string>().c_str());
      return 0;
    };
  });

  auto* designate = sub->add_subcommand("designate", "the owner names who may inherit an adapter (signed with the owner's key)");
  designate->add_option("adapter", o->id, "id, unique id prefix, or the owner's name")->required();
  designate->add_option("--successor", o->successor, "the person who may inherit it")->required();
  designate->add_option("--key", o->key, "the owner's secret key (default: " + estate::default_key_dir() + "/OWNER.key)");
  common_opts(designate);
  designate->callback([=, &common] {
    *action = [=, &common] {
      Registry r = reg();
      const AdapterRecord a = r.resolve(o->id);
      const estate::Designation d = r.designate(a.id, o->successor, estate::load_secret_key(key_path(o->key, a.owner)));
      if (common.json) print_json({{"adapter", d.adapter}, {"owner", d.owner}, {"successor", d.successor}, {"created", d.created}});
      else std::printf("%s designated %s as the successor of %s\n", d.owner.c_str(), d.successor.c_str(), short_id(d.adapter).c_str());
      return 0;
    };
  });

  auto* verify = sub->add_subcommand("verify", "check every adapter's bytes, checksum and signature, and every designation");
  verify->add_option("adapter", o->id, "only this adapter (id, prefix or owner)");
  common_opts(verify);
  verify->callback([=, &common] {
    *action = [=, &common] {
      const Registry r = reg();
      const estate::VerifyReport v = r.verify(o->id);
      if (common.json) print_json({{"ok", v.ok()}, {"adapters", v.adapters}, {"designations", v.designations}, {"problems", v.problems}});
      else {
        for (const std::string& p : v.problems) std::printf("PROBLEM %s\n", p.c_str());
        std::printf("%s: %d adapters, %d designations checked\n", v.ok() ? "ok" : "FAILED", v.adapters, v.designations);
      }
      return v.ok() ? 0 : 1;
    };
  });

  auto* get = sub->add_subcommand("get", "write an adapter's file out of the registry (after verifying it)");
  get->add_option("adapter", o->id, "id, unique id prefix, or the owner's name")->required();
  get->add_option("--out", o->out, "where to write it")->required();
  common_opts(get);
  get->callback([=, &common] {
    *action = [=, &common] {
      const Registry r = reg();
      const AdapterRecord a = r.resolve(o->id);
      const estate::VerifyReport v = r.verify(a.id);
      if (!v.ok()) throw Error(v.problems.front(), "the registry's copy is damaged or was altered");
      const std::vector<uint8_t> bytes = r.file(a.id);
      write_file_atomic(o->out, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
      if (common.json) print_json({{"id", a.id}, {"out", o->out}, {"bytes", bytes.size()}});
      else std::printf("wrote %s (%zu bytes)\n", o->out.c_str(), bytes.size());
      return 0;
    };
  });

  return [action] { return (*action)(); };
}

}  // namespace heirloom::cli
