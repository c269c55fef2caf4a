// `heirloom inherit`: a successor inherits a parent's adapter. The overlap report and the recommendation
// come first; nothing is written until the successor accepts; then the heir is made, measured against
// the pure parent and the pure child, and written with its lineage.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/estate.h"
#include "heirloom/inherit.h"
#include "heirloom/model.h"
#include "heirloom/personalize.h"
#include "heirloom/text.h"

namespace heirloom::cli {

namespace {

struct DomainRow {
  std::string domain;
  double base = 0, parent = 0, child = 0, heir = 0;
  std::vector<int64_t> routed;
};


bool ask_yes(const std::string& question) {
  if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) return false;
  std::printf("%s [y/N] ", question.c_str());
  std::fflush(stdout);
  std::string answer;
  std::getline(std::cin, answer);
  return answer == "y" || answer == "Y" || answer == "yes";
}

}  // namespace

Action add_inherit(CLI::App& app, Common& common) {
  auto* sub = app.add_subcommand("inherit", "inherit a parent's adapter: see the overlap regime and what it will keep, then accept");
  struct Opts {
    std::string base, parent, child, scheme = "auto", out, parent_text, general, corpus_dir, owner, precision = "auto";
    std::string registry, key;
    std::vector<std::string> child_texts;
    PersonalizeOptions p;
    bool accept = false, keep_both = false, f32 = false;
    int ctx = 0;
  };
  auto o = std::make_shared<Opts>();
  sub->add_option("--parent", o->parent, "the parent's adapter (GGUF): the estate; with --registry, its id, id prefix or owner's name")
      ->required();
  sub->add_option("--registry", o->registry,
                  "inherit through the estate registry: only a successor (--owner) the parent's owner designated may, and the "
                  "heir is stored there signed with the successor's key");
  sub->add_option("--key", o->key, "with --registry: the successor's secret key (default: the estate's key folder, OWNER.key)");
  auto* child = sub->add_option("--child", o->child, "the child's own adapter, already trained on the same base")->check(CLI::ExistingFile);
  sub->add_option("--child-text", o->child_texts, "the child's text: their adapter is trained first (with the parent's kind)")
      ->expected(1, -1)->check(CLI::ExistingFile);
  sub->add_option("--scheme", o->scheme, "auto, linear, blend:LAMBDA (parent weight), taskvec:ALPHA, distill, concat, ties:DENSITY, dare:DENSITY")
      ->capture_default_str();
  sub->add_flag("--keep-both", o->keep_both, "high-stakes retention: with --scheme auto, keep both adapters whole (concat, 2x memory)");
  sub->add_flag("--accept", o->accept, "accept the inheritance without asking (otherwise asked in a terminal; nothing is written without a yes)");
  sub->add_option("--out", o->out, "the heir's adapter file (default: heir.<kind>.gguf)");
  sub->add_option("--parent-text", o->parent_text, "held-out text in the parent's domain, to measure how much of the parent's skill the heir keeps")
      ->check(CLI::ExistingFile);
  sub->add_option("--general", o->general, "held-out general text for the child's training (default: the general corpus's held-out split)");
  sub->add_option("--corpus-dir", o->corpus_dir, "built corpus directory (default: " + default_corpus_dir() + ")");
  sub->add_option("--base,--model", o->base, "the base both adapters belong to; default: the moe-30m base under models/ or the cache");
  sub->add_option("--steps", o->p.steps, "training steps for the child's adapter and for distill")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--lr", o->p.lr, "learning rate (default: the kind's, as in personalize)");
  sub->add_option("--seed", o->p.seed, "seed for training windows, LoRA factorisation and DARE")->capture_default_str();
  sub->add_option("--ctx", o->ctx, "evaluation window (default 256, or the base's context when shorter)");
  sub->add_option("--owner", o->owner, "the successor's name (default: the child adapter's owner, or $USER)");
  sub->add_flag("--f32", o->f32, "store fp32 values (default fp16)");
  sub->get_option("--child-text")->excludes(child);
  add_precision_option(*sub, o->precision);
  add_common_flags(*sub, common);
  return [o, &common] {
    if (o->child.empty() && o->child_texts.empty()) throw Error("inherit needs the child: --child ADAPTER or --child-text FILE...");
    const std::string base_path = resolve_model(o->base);
    const Model base = load_model(base_path);
    const ModelConfig& mc = base.config;
    const bool say = !common.json;
    const char* user = std::getenv("USER");
    // Through the registry, consent and integrity come first: a designated successor, verified signatures.
    std::optional<estate::Registry> registry;
    estate::KeyPair successor_key;
    Adapter parent;
    if (!o->registry.empty()) {
      if (o->owner.empty()) throw Error("inheriting through the registry needs the successor's name", "pass --owner NAME");
      registry = estate::Registry::open(o->registry);
      successor_key = estate::load_secret_key(key_path(o->key, o->owner));
      const estate::AdapterRecord rec = registry->resolve(o->parent);
      parent = load_adapter_bytes(registry->file_for_inheritance(rec.id, o->owner), "registry adapter " + rec.id.substr(0, 12), base);
    } else {
      if (!std::filesystem::is_regular_file(o->parent))
        throw Error("--parent: no such file " + o->parent, "pass the parent's adapter file, or --registry DB to name it by id or owner");
      parent = load_adapter(o->parent, base);
    }

    // The child's adapter: given, or trained now with the parent's kind and shape.
    PersonalizeOptions p = o->p;
    p.precision = parse_precision(o->precision);
    p.texts = o->child_texts;
    p.kind = parent.kind;
    p.lora = parent.lora;
    p.progress = say;
    p.owner = !o->owner.empty() ? o->owner : user ? user : "";
    p.general = o->general;
    if (p.general.empty()) {
      const CorpusDir cd{o->corpus_dir.empty() ? default_corpus_dir() : o->corpus_dir};
      if (std::filesystem::exists(cd.heldout_path("general"))) p.general = cd.heldout_path("general");
    }
    PersonTokens child_tokens;
    Adapter child_adapter;
    if (!o->child.empty()) {
      child_adapter = load_adapter(o->child, base);
    } else {
      child_tokens = person_tokens(base, p);
      if (say) std::printf("training the child's own %s adapter on %zu tokens\n", kind_name(p.kind), child_tokens.train.size());
      child_adapter = make_adapter(base, p.kind, p.lora, p.seed);
      personalize_tokens(base, child_adapter, child_tokens.train, child_tokens.heldout, child_tokens.general, p);
      child_adapter.info.sha256 = adapter_checksum(child_adapter, mc, StorageType::f16);
    }
    if (!o->owner.empty()) child_adapter.info.owner = o->owner;

    // The report, before anything is decided.
    const Adapter& parent_body = parent.routed() ? parent.branches.back() : parent;  // the latest generation kept
    const inherit::OverlapReport ov = inherit::overlap(parent_body, child_adapter, mc);
    std::string why = "chosen by you";
    inherit::Scheme scheme =
        o->scheme == "auto" ? inherit::recommend(ov, o->keep_both, &why) : inherit::parse_scheme(o->scheme);
    if (parent.routed() && o->scheme == "auto" && scheme.name != "concat") {
      scheme = inherit::parse_scheme("concat");
      why = "the parent's adapter is itself a concatenated heir; only concatenation extends it (one more branch)";
    }
    if (scheme.name == "distill" && child_tokens.train.empty())
      throw Error("distill trains the parent's adapter on the child's text", "pass --child-text instead of --child");
    const nlohmann::json predicted = ov.predicted.contains(scheme.spec()) ? ov.predicted[scheme.spec()] : nlohmann::json();
    if (say) {
      std::printf("\nparent %s (owner %s, generation %d) -> child %s (owner %s), %s adapters\n", o->parent.c_str(),
                  parent.info.owner.c_str(), parent.lineage.generation, o->child.empty() ? "(trained now)" : o->child.c_str(),
                  child_adapter.info.owner.c_str(), kind_name(parent.kind));
      print_overlap(ov);
      std::printf("\nscheme: %s — %s\n  because %s\n", scheme.spec().c_str(), scheme.describe().c_str(), why.c_str());
      if (!predicted.is_null())
        std::printf("  predicted: the heir keeps %.0f %% of the parent's skill and %.0f %% of the child's\n",
                    100 * predicted["parent_ratio"].get<double>(), 100 * predicted["child_ratio"].get<double>());
      else
        std::printf("  (no synthetic prediction for this parameter; the Bet 69 sweep covers the listed schemes)\n");
      if (scheme.name == "concat") std::printf("  note: concatenation keeps both adapters, so the heir takes 2x the memory and 2x the compute to route\n");
    }
    const std::string out = o->out.empty() ? std::string("heir.") + kind_name(parent.kind) + ".gguf" : o->out;
    const bool accepted = o->accept || (say && ask_yes("\nAccept this inheritance and write " + out + "?"));
    if (!accepted) {
      if (common.json)
        print_json({{"accepted", false}, {"overlap", inherit::to_json(ov)}, {"scheme", scheme.spec()}, {"why", why}, {"predicted", predicted}});
      else
        std::printf("\nNothing was written. Rerun with --accept to inherit.\n");
      return 0;
    }

    // The heir.
    Adapter heir;
    double energy = 1.0;
    if (scheme.name == "distill") {
      if (parent.routed()) throw Error("distill starts from one adapter; the parent is a concatenated heir", "choose --scheme concat");
      heir = parent;
      if (say) std::printf("distilling: the parent's adapter trained on the child's text\n");
      personalize_tokens(base, heir, child_tokens.train, child_tokens.heldout, child_tokens.general, p);
      heir.info.base_fingerprint = parent.info.base_fingerprint;
      heir.info.owner = child_adapter.info.owner;
      heir.lineage = inherit::lineage_of(parent, child_adapter, scheme, ov);
    } else {
      heir = inherit::merge_heir(parent, child_adapter, scheme, mc, ov, &energy, p.seed);
    }
    heir.info.created.clear();

    // Measured: each domain's held-out ppl under the base, the pure parent, the pure child and the heir.
    const int ctx = o->ctx > 0 ? o->ctx : std::min(256, mc.n_ctx);
    std::vector<DomainRow> rows;
    auto measure = [&](const std::string& name, const std::vector<int32_t>& toks) {
      const std::vector<int32_t> t(toks.begin(), toks.begin() + std::min<size_t>(toks.size(), 8192));
      DomainRow r;
      r.domain = name;
      r.base = inherit::adapter_perplexity(base, nullptr, t, ctx).ppl();
      r.parent = inherit::adapter_perplexity(base, &parent, t, ctx).ppl();
      r.child = inherit::adapter_perplexity(base, &child_adapter, t, ctx).ppl();
      const inherit::AdapterPerplexity h = inherit::adapter_perplexity(base, &heir, t, ctx);
      r.heir = h.ppl();
      r.routed = h.routed;
      rows.push_back(r);
    };
    if (!o->parent_text.empty()) measure("parent", encode(base.vocab, read_person_text(o->parent_text, 256ll << 20).text, true));
    if (!child_tokens.heldout.empty()) measure("child", child_tokens.heldout);

    const std::string sha = save_adapter(heir, mc, out, o->f32 ? StorageType::f32 : StorageType::f16);
    const uintmax_t bytes = std::filesystem::file_size(out);
    std::string registry_id;
    if (registry) registry_id = registry->add_adapter(read_file_bytes(out), successor_key, o->owner).id;
    nlohmann::json measured = nlohmann::json::array();
    for (const DomainRow& r : rows) {
      const double pure = r.domain == "parent" ? r.parent : r.child;
      measured.push_back({{"domain", r.domain}, {"base_ppl", r.base}, {"parent_ppl", r.parent}, {"child_ppl", r.child},
                          {"heir_ppl", r.heir}, {"ratio", pure / r.heir}, {"gain_kept", inherit::gain_kept(r.base, pure, r.heir)},
                          {"routed_targets", r.routed}});
    }
    if (common.json) {
      print_json({{"accepted", true}, {"heir", out}, {"heir_bytes", bytes}, {"heir_sha256", sha}, {"scheme", scheme.spec()},
                  {"scheme_params", scheme.describe()}, {"why", why}, {"generation", heir.lineage.generation},
                  {"overlap", inherit::to_json(ov)}, {"predicted", predicted}, {"measured", measured},
                  {"lora_energy_kept", energy}, {"parent_sha256", parent.info.sha256}, {"child_sha256", child_adapter.info.sha256},
                  {"registry_id", registry_id}});
      return 0;
    }
    if (!rows.empty()) {
      std::printf("\nmeasured held-out perplexity (window %d):\n  %-8s %10s %10s %10s %10s   %s\n", ctx, "domain", "base",
                  "parent", "child", "heir", "heir vs the pure adapter of the domain");
      for (const DomainRow& r : rows) {
        const double pure = r.domain == "parent" ? r.parent : r.child;
        std::printf("  %-8s %10.2f %10.2f %10.2f %10.2f   ratio %.2f, keeps %.0f %% of its gain over the base", r.domain.c_str(), r.base,
                    r.parent, r.child, r.heir, pure / r.heir, 100 * inherit::gain_kept(r.base, pure, r.heir));
        if (!r.routed.empty()) std::printf(" (routed: %lld to parent, %lld to child)", (long long)r.routed.front(), (long long)r.routed.back());
        std::printf("\n");
      }
    }
    if (rows.size() < 2)
      std::printf("(%s)\n", o->parent_text.empty() ? "pass --parent-text with held-out text of the parent's domain to measure what the heir keeps of it"
                                                    : "pass --child-text to measure the child's domain");
    if (energy < 0.999) std::printf("LoRA: the merged products were factored to rank %d, keeping %.1f %% of their energy\n", heir.lora.rank, 100 * energy);
    std::printf("heir: %s, %ju bytes, generation %d, scheme %s (lineage recorded: parent %.12s…, child %.12s…)\n", out.c_str(), bytes,
                heir.lineage.generation, scheme.spec().c_str(), parent.info.sha256.c_str(), child_adapter.info.sha256.c_str());
    if (registry) std::printf("stored in the registry as %.12s, signed by %s\n", registry_id.c_str(), o->owner.c_str());
    return 0;
  };
}

}  // namespace heirloom::cli
