// GGUF writing: metadata in insertion order, tensors at llama.cpp's offsets, and an atomic file
// write (temporary file, fsync, rename) so a failure never leaves a partial file at the target.
// Not here: reading and validation (gguf.cpp). Tensor data is borrowed, not copied (see gguf.h).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "heirloom/error.h"
#include "io/gguf.h"

namespace heirloom::gguf {

namespace {

constexpr const char* kWriterHint = "the tensor handed to the GGUF writer is inconsistent (a bug in the caller)";

}  // namespace

void Writer::set(std::string key, Value value) {
  for (KeyValue& e : kv_) {
    if (e.key == key) {
      e.value = std::move(value);
      return;
    }
  }
  kv_.push_back({std::move(key), std::move(value)});
}

void Writer::set_string_array(std::string key, std::vector<std::string> v) {
  set(std::move(key), Value{Array{std::move(v)}});
}
void Writer::set_f32_array(std::string key, std::vector<float> v) { set(std::move(key), Value{Array{std::move(v)}}); }
void Writer::set_i32_array(std::string key, std::vector<int32_t> v) {
  set(std::move(key), Value{Array{std::move(v)}});
}

void Writer::add_tensor(std::string name, std::vector<int64_t> ne, TensorType type, const void* data,
                        size_t nbytes) {
  const std::string what = "gguf writer: tensor " + in_quotes(name);
  if (name.empty() || name.size() > kMaxTensorName) {
    throw Error(what + ": expected a name of 1..63 bytes, found " + std::to_string(name.size()) + " bytes",
                "llama.cpp limits tensor names to 63 bytes");
  }
  for (const Pending& p : tensors_)
    if (p.info.name == name) throw Error(what + ": expected unique tensor names, found a duplicate", kWriterHint);
  if (const auto bad = check_shape(ne, static_cast<int32_t>(type))) {
    throw Error(what + ": expected " + bad->expected + ", found " + bad->found, kWriterHint);
  }
  TensorInfo info{std::move(name), std::move(ne), type, 0};
  if (info.nbytes() != nbytes || (nbytes && !data)) {
    throw Error(what + ": expected " + std::to_string(info.nbytes()) + " bytes of " + type_name(type) +
                    " data for its shape, found " + std::to_string(nbytes) + (data ? "" : " (null pointer)"),
                kWriterHint);
  }
  tensors_.push_back({std::move(info), data});
}

uint32_t Writer::alignment() const {
  for (const KeyValue& e : kv_) {
    if (e.key != "general.alignment") continue;
    const uint32_t* a = std::get_if<uint32_t>(&e.value.v);
    if (!a || !std::has_single_bit(*a)) {
      throw Error("gguf writer: key 'general.alignment': expected a u32 power of two, found " + describe(e.value),
                  "llama.cpp requires general.alignment to be a u32 power of two");
    }
    return *a;
  }
  return 32;
}

namespace {

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t n = out.size();
  out.resize(n + sizeof(T));
  std::memcpy(out.data() + n, &v, sizeof(T));
}
void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void put_value(std::vector<uint8_t>& out, const Value& value) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) {
          put_string(out, x);
        } else if constexpr (std::is_same_v<T, bool>) {
          put<uint8_t>(out, x ? 1 : 0);
        } else if constexpr (std::is_same_v<T, Array>) {
          put<int32_t>(out, static_cast<int32_t>(x.elem_type()));
          put<uint64_t>(out, x.size());
          std::visit(
              [&](const auto& vec) {
                for (const auto& e : vec) {
                  using E = std::decay_t<decltype(e)>;
                  if constexpr (std::is_same_v<E, std::string>) put_string(out, e);
                  else if constexpr (std::is_same_v<E, bool>) put<uint8_t>(out, e ? 1 : 0);
                  else put<E>(out, e);
                }
              },
              x.data);
        } else {
          put<T>(out, x);
        }
      },
      value.v);
}

}  // namespace

std::vector<uint8_t> Writer::header() const {
  const uint64_t al = alignment();
  std::vector<uint8_t> out = {'G', 'G', 'U', 'F'};
  put<uint32_t>(out, 3);
  put<int64_t>(out, static_cast<int64_t>(tensors_.size()));
  put<int64_t>(out, static_cast<int64_t>(kv_.size()));
  for (const KeyValue& e : kv_) {
    put_string(out, e.key);
    put<int32_t>(out, static_cast<int32_t>(e.value.type()));
    put_value(out, e.value);
  }
  uint64_t offset = 0;
  for (const Pending& p : tensors_) {
    put_string(out, p.info.name);
    put<uint32_t>(out, static_cast<uint32_t>(p.info.ne.size()));
    for (int64_t d : p.info.ne) put<int64_t>(out, d);
    put<int32_t>(out, static_cast<int32_t>(p.info.type));
    put<uint64_t>(out, offset);
    offset += align_up(p.info.nbytes(), al);
  }
  out.resize(align_up(out.size(), al), 0);
  return out;
}

std::vector<uint8_t> Writer::to_bytes() const {
  const uint64_t al = alignment();
  std::vector<uint8_t> out = header();
  for (const Pending& p : tensors_) {
    const auto* d = static_cast<const uint8_t*>(p.data);
    out.insert(out.end(), d, d + p.info.nbytes());
    out.resize(align_up(out.size(), al), 0);
  }
  return out;
}

void Writer::write(const std::string& path) const {
  const uint64_t al = alignment();
  const std::vector<uint8_t> head = header();
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  FILE* fp = std::fopen(tmp.c_str(), "wb");
  if (!fp) {
    throw Error("cannot write " + path + ": creating the temporary file " + tmp + " failed: " + std::strerror(errno),
                "check that the directory exists, is writable and has free space");
  }
  auto fail = [&](const char* step) {
    const int err = errno;
    if (fp) std::fclose(fp);
    std::remove(tmp.c_str());
    throw Error("cannot write " + path + " (" + step + "): " + std::strerror(err),
                "check free disk space and permissions; the previous file, if any, is unchanged");
  };
  static const uint8_t zeros[256] = {};  // alignment padding source; alignments above 256 loop
  auto pad = [&](uint64_t n) {
    while (n) {
      const size_t k = n < sizeof zeros ? static_cast<size_t>(n) : sizeof zeros;
      if (std::fwrite(zeros, 1, k, fp) != k) return false;
      n -= k;
    }
    return true;
  };
  if (std::fwrite(head.data(), 1, head.size(), fp) != head.size()) fail("header");
  for (const Pending& p : tensors_) {
    const uint64_t n = p.info.nbytes();
    if (std::fwrite(p.data, 1, n, fp) != n || !pad(align_up(n, al) - n)) fail("tensor data");
  }
  if (std::fflush(fp) != 0 || ::fsync(::fileno(fp)) != 0) fail("flush");
  const int rc = std::fclose(fp);
  fp = nullptr;
  if (rc != 0) fail("close");
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename");
  // Make the rename itself durable; failure here loses nothing already visible, so it is not an error.
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace heirloom::gguf
