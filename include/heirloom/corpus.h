// `heirloom corpus build`: the general corpus and the person corpora from Debian's text packages, their
// deterministic paragraph-level train/held-out splits, the SentencePiece vocabulary trained on the general
// corpus, and a manifest (JSON) with each corpus's packages, versions, licences, sizes and sha256.
// Re-running on the same machine gives byte-identical output.
#pragma once
#include <string>
#include <vector>

#include "heirloom/vocab.h"

namespace heirloom {

struct CorpusBuildOptions {
  std::string out_dir;      // empty: default_corpus_dir()
  std::string recipe_path;  // empty: the built-in recipes/corpora.json
  bool progress = true;
};

// $HEIRLOOM_CACHE, else $XDG_CACHE_HOME/heirloom, else ~/.cache/heirloom
std::string cache_dir();
std::string default_corpus_dir();  // cache_dir() + "/corpora"
std::string builtin_corpus_recipe();  // the JSON text compiled into the program

// Builds everything into out_dir (files written atomically); returns the manifest JSON text.
std::string build_corpora(const CorpusBuildOptions& opt);

// A built corpus directory: DIR/NAME/train.txt, DIR/NAME/heldout.txt, DIR/tokenizer.gguf, DIR/manifest.json.
struct CorpusDir {
  std::string dir;
  std::string train_path(const std::string& name) const { return dir + "/" + name + "/train.txt"; }
  std::string heldout_path(const std::string& name) const { return dir + "/" + name + "/heldout.txt"; }
  std::string tokenizer_path() const { return dir + "/tokenizer.gguf"; }
  std::string manifest_path() const { return dir + "/manifest.json"; }
  // Names of the person corpora listed in the manifest; Error if the directory is not a built corpus.
  std::vector<std::string> people() const;
  Vocab vocab() const;
};

}  // namespace heirloom

namespace heirloom {

// The base model heirloom uses when no --base/--model is given: $HEIRLOOM_BASE, else models/moe-30m.gguf
// beside the program's source tree or the current directory, else the cache's bases/moe-30m.gguf.
// Returns "" when none exists.
std::string find_default_base();

}  // namespace heirloom
