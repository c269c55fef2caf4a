// The corpus builder behind `heirloom corpus build`. See include/heirloom/corpus.h.
// Order of work: resolve every source to a sorted file list (or run its command), extract plain text,
// split into paragraphs, send each paragraph to train or held-out by a hash of its text (one salt for all
// corpora, so a paragraph shared by two corpora lands on the same side in both), write the splits, train
// the tokenizer on the general training split, count tokens, write the manifest. No timestamps anywhere:
// a rebuild is byte-identical.
#include <fnmatch.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "core/progress.h"
#include "core/sha256.h"
#include "heirloom/corpus.h"
#include "heirloom/error.h"
#include "heirloom/text.h"
#include "io/gguf.h"
#include "text/clean.h"
#include "text/extract.h"
#include "text/tokenizer_train.h"

namespace heirloom {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kSplitSalt = "heirloom-split-v1";

std::string run_command(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) {
    std::string q = "'";
    for (char c : a) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    cmd += (cmd.empty() ? "" : " ") + q + "'";
  }
  std::FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  if (!p) throw Error("could not run '" + cmd + "'");
  std::string out;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  if (status != 0 || out.empty())
    throw Error("the command '" + cmd + "' failed or printed nothing", "is its package installed? run scripts/setup");
  return out;
}

std::string package_version(const std::string& package) {
  const std::string out = run_command({"dpkg-query", "-W", "-f=${Version}", package});
  return out;
}

// Files matching a glob with '*', '?', '[..]' inside a path segment and '**' for any number of directories.
void glob_walk(const fs::path& dir, const std::vector<std::string>& segs, size_t i, std::vector<std::string>& out) {
  std::error_code ec;
  if (i == segs.size()) {
    if (fs::is_regular_file(dir, ec)) out.push_back(dir.string());
    return;
  }
  if (segs[i] == "**") {
    glob_walk(dir, segs, i + 1, out);
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.is_directory(ec) && !e.is_symlink(ec)) glob_walk(e.path(), segs, i, out);
    return;
  }
  if (segs[i].find_first_of("*?[") == std::string::npos) {
    const fs::path next = dir / segs[i];
    if (fs::exists(next, ec)) glob_walk(next, segs, i + 1, out);
    return;
  }
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (fnmatch(segs[i].c_str(), e.path().filename().c_str(), 0) == 0 && !e.is_symlink(ec)) glob_walk(e.path(), segs, i + 1, out);
}

std::vector<std::string> expand_glob(const std::string& pattern) {
  std::vector<std::string> segs;
  size_t start = pattern[0] == '/' ? 1 : 0;
  while (start <= pattern.size()) {
    size_t e = pattern.find('/', start);
    if (e == std::string::npos) e = pattern.size();
    if (e > start) segs.push_back(pattern.substr(start, e - start));
    start = e + 1;
  }
  std::vector<std::string> out;
  glob_walk(pattern[0] == '/' ? fs::path("/") : fs::current_path(), segs, 0, out);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

struct Split {
  std::vector<std::string> train, heldout;
  size_t n_files = 0;
};

std::string join(const std::vector<std::string>& paras) {
  std::string s;
  for (const auto& p : paras) {
    if (!s.empty()) s += "\n\n";
    s += p;
  }
  if (!s.empty()) s += "\n";
  return s;
}

// Extracts one source and appends its paragraphs to the split.
json build_source(const json& src, const std::string& corpus, double heldout_fraction, Split& split) {
  const std::string package = src.at("package");
  const std::string format = src.at("format");
  const bool kjv = format == "bible_kjv";  // the `bible` program's output, not a file format
  const TextFormat fmt = kjv ? TextFormat::plain : parse_text_format(format);
  std::string version;
  try {
    version = package_version(package);
  } catch (const Error&) {
    throw Error("corpus '" + corpus + "' needs the Debian package '" + package + "', which is not installed",
                "run scripts/setup (or: sudo apt-get install " + package + ")");
  }
  std::vector<std::string> texts;
  size_t bytes = 0;
  const int64_t max_bytes = src.value("max_bytes", (int64_t)0);
  if (src.contains("command")) {
    const std::string out = run_command(src.at("command").get<std::vector<std::string>>());
    texts.push_back(kjv ? extract_bible_kjv(out) : extract_text(fmt, out));
    split.n_files += 1;
  } else {
    std::vector<std::string> files;
    if (src.contains("files")) files = src.at("files").get<std::vector<std::string>>();
    else files = expand_glob(src.at("glob").get<std::string>());
    if (files.empty())
      throw Error("package '" + package + "' provides no files matching " + src.value("glob", std::string("the listed files")),
                  "reinstall it (sudo apt-get install --reinstall " + package + "); some images drop /usr/share/doc");
    for (const auto& f : files) {
      if (max_bytes > 0 && (int64_t)bytes >= max_bytes) break;
      std::string raw = read_text_file(f);
      if (looks_gzipped(raw)) raw = gunzip(raw);
      // Info files carry a few NULs in their index markup; binary files are full of them.
      if (std::count(raw.begin(), raw.end(), '\0') * 100 > (long)raw.size())
        throw Error("'" + f + "' (corpus '" + corpus + "') is not a text file: over 1% of its bytes are NUL",
                    "point the recipe at text, HTML or a supported documentation format");
      texts.push_back(extract_text(fmt, raw));
      bytes += texts.back().size();
      split.n_files += 1;
    }
  }
  size_t n_paras = 0;
  for (const auto& t : texts)
    for (auto& p : split_paragraphs(t)) {
      ++n_paras;
      (is_heldout(p, kSplitSalt, heldout_fraction) ? split.heldout : split.train).push_back(std::move(p));
    }
  if (n_paras == 0)
    throw Error("corpus '" + corpus + "': package '" + package + "' gave no text", "the installed files may be empty or of another format");
  return {{"package", package}, {"version", version}, {"licence", src.at("licence")}, {"format", src.at("format")},
          {"files", split.n_files}};
}

}  // namespace

std::string cache_dir() {
  if (const char* h = std::getenv("HEIRLOOM_CACHE"); h && *h) return h;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/heirloom";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/heirloom";
  return (fs::temp_directory_path() / "heirloom-cache").string();
}

std::string default_corpus_dir() { return cache_dir() + "/corpora"; }

std::string build_corpora(const CorpusBuildOptions& opt) {
  const std::string dir = opt.out_dir.empty() ? default_corpus_dir() : opt.out_dir;
  json recipe;
  try {
    recipe = json::parse(opt.recipe_path.empty() ? builtin_corpus_recipe() : read_text_file(opt.recipe_path));
  } catch (const json::exception& e) {
    throw Error("the corpus recipe is not valid JSON: " + std::string(e.what()), "fix the recipe file");
  }
  const double fraction = recipe.value("heldout_fraction", 0.1);
  const int vocab_size = recipe.value("vocab_size", 8192);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create '" + dir + "': " + ec.message());

  const json& corpora = recipe.at("corpora");
  Progress bar((long)corpora.size() + 2, "corpus build", "step", opt.progress);
  json manifest = {{"recipe_sha256", sha256_hex(recipe.dump())}, {"heldout_fraction", fraction}, {"split", "paragraph, by a hash of its text"}};
  std::unordered_set<std::string> train_paragraphs;
  std::vector<std::pair<std::string, Split>> built;
  long step = 0;
  for (const json& c : corpora) {
    const std::string name = c.at("name");
    bar.update(step, name);
    Split split;
    json sources = json::array();
    for (const json& s : c.at("sources")) sources.push_back(build_source(s, name, fraction, split));
    if (split.train.empty() || split.heldout.empty())
      throw Error("corpus '" + name + "' is too small to split into train and held-out", "add more text to its sources");
    for (const auto& p : split.train) train_paragraphs.insert(p);
    manifest["corpora"].push_back({{"name", name}, {"kind", c.at("kind")}, {"description", c.value("description", "")},
                                   {"sources", sources}});
    built.emplace_back(name, std::move(split));
    bar.update(++step, name);
  }
  // The split is by content hash, so a held-out paragraph cannot be in any training split; verify it.
  size_t leaked = 0;
  for (const auto& [name, split] : built)
    for (const auto& p : split.heldout) leaked += train_paragraphs.count(p);
  if (leaked) throw Error("internal: " + std::to_string(leaked) + " held-out paragraphs also occur in training splits");
  manifest["heldout_paragraphs_in_training"] = leaked;

  for (auto& [name, split] : built) {
    fs::create_directories(dir + "/" + name, ec);
    write_file_atomic(dir + "/" + name + "/train.txt", join(split.train));
    write_file_atomic(dir + "/" + name + "/heldout.txt", join(split.heldout));
  }
  bar.update(++step, "tokenizer");
  TokenizerTrainOptions to;
  to.vocab_size = vocab_size;
  const TrainedTokenizer tok = train_tokenizer(dir + "/general/train.txt", to);
  {
    gguf::Writer w;
    w.set_string("general.type", "vocabulary");
    write_vocab(w, tok.vocab);
    w.write(dir + "/tokenizer.gguf");
    write_file_atomic(dir + "/tokenizer.spm", tok.spm_model);
  }
  manifest["tokenizer"] = {{"kind", "SentencePiece BPE, byte fallback, identity normalisation"},
                           {"vocab_size", tok.vocab.n_tokens()}, {"trained_on", "general/train.txt"},
                           {"sha256", sha256_hex(tok.spm_model)}};
  for (size_t i = 0; i < built.size(); ++i) {
    json& m = manifest["corpora"][i];
    for (const char* part : {"train", "heldout"}) {
      const std::string text = read_text_file(dir + "/" + built[i].first + "/" + part + ".txt");
      m[part] = {{"bytes", text.size()}, {"paragraphs", (std::string(part) == "train" ? built[i].second.train : built[i].second.heldout).size()},
                 {"tokens", encode(tok.vocab, text, false).size()}, {"sha256", sha256_hex(text)}};
    }
  }
  const std::string text = manifest.dump(2) + "\n";
  write_file_atomic(dir + "/manifest.json", text);
  bar.finish();
  return text;
}

std::vector<std::string> CorpusDir::people() const {
  json m;
  try {
    m = json::parse(read_text_file(manifest_path()));
  } catch (const json::exception&) {
    throw Error("'" + manifest_path() + "' is not a corpus manifest", "rebuild with: heirloom corpus build");
  }
  std::vector<std::string> out;
  for (const auto& c : m.at("corpora"))
    if (c.at("kind") == "person") out.push_back(c.at("name"));
  return out;
}

Vocab CorpusDir::vocab() const { return read_vocab(gguf::read_file(tokenizer_path())); }

}  // namespace heirloom

namespace heirloom {

std::string find_default_base() {
  if (const char* b = std::getenv("HEIRLOOM_BASE"); b && *b) return b;
  std::vector<fs::path> candidates = {fs::current_path() / "models/moe-30m.gguf"};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "models/moe-30m.gguf");  // build/heirloom → ../models
  candidates.push_back(fs::path(cache_dir()) / "bases/moe-30m.gguf");
  for (const auto& c : candidates)
    if (fs::is_regular_file(c, ec)) return c.string();
  return "";
}

}  // namespace heirloom
