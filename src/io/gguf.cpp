// GGUF reading (validate-then-read), value helpers and lookups. See gguf.h; the writer is gguf_write.cpp.
// Why a bounds-checked cursor: every length in a GGUF file is attacker-controlled; each is compared
// with the bytes that remain before anything is allocated, so a 2^60 string length is an Error, not
// an out-of-memory kill.
#include "io/gguf.h"

#include <algorithm>
#include <bit>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <unordered_set>

#include "heirloom/error.h"

namespace heirloom::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF is little-endian; so is this reader");

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

std::string in_quotes(std::string_view s) {
  std::string r;  // built by appends: GCC 12 warns falsely (-Wrestrict) on "'" + std::string(s) + "'"
  r.reserve(s.size() + 2);
  r += '\'';
  r += s;
  r += '\'';
  return r;
}

namespace {

constexpr uint64_t kMaxTensors = 1'000'000, kMaxKv = 1'000'000;
constexpr int64_t kMaxNumel = int64_t{1} << 40;
constexpr const char* kHint = "the file may be truncated or is not a GGUF model";

// "0..N" for a count, saying when the file's remaining size (not the format) sets the limit.
std::string count_limit(uint64_t cap, uint64_t remaining, uint64_t min_bytes_each) {
  const uint64_t fit = remaining / min_bytes_each;
  if (fit >= cap) return "0.." + std::to_string(cap);
  return "0.." + std::to_string(fit) + " (all that the " + std::to_string(remaining) + " remaining bytes can hold)";
}

// Names a field for error messages: base + suffix + "[index]". Assembled only when an error is
// reported, so reading a 32k-entry string array builds no message strings.
struct Field {
  Field(std::string_view b, std::string_view s = {}, int64_t i = -1) : base(b), suffix(s), index(i) {}
  std::string str() const {
    std::string r = std::string(base) + std::string(suffix);
    return index >= 0 ? r + "[" + std::to_string(index) + "]" : r;
  }
  std::string_view base, suffix;
  int64_t index;
};

// Reads little-endian fields from a byte buffer, checking the remaining length every time.
class Cursor {
 public:
  Cursor(const Bytes& b, const std::string& name) : b_(b), name_(name) {}
  size_t pos() const { return pos_; }
  uint64_t remaining() const { return b_.size() - pos_; }

  [[noreturn]] void fail(const std::string& field, const std::string& expected, const std::string& found,
                         const char* hint = kHint) const {
    throw Error(name_ + ": " + field + " (at byte " + std::to_string(pos_) + "): expected " + expected +
                    ", found " + found,
                hint);
  }
  template <class T>
  T read(const Field& field) {
    if (sizeof(T) > remaining()) {
      fail(field.str(), std::to_string(sizeof(T)) + " more bytes",
           "only " + std::to_string(remaining()) + " before the end");
    }
    T v;
    std::memcpy(&v, b_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string read_string(const Field& field, uint64_t max_len = UINT64_MAX) {
    const uint64_t n = read<uint64_t>(field);
    if (n > max_len) fail(field.str() + " length", "at most " + std::to_string(max_len) + " bytes", std::to_string(n));
    if (n > remaining()) {
      fail(field.str() + " length", "at most " + std::to_string(remaining()) + " (the bytes left in the file)",
           std::to_string(n));
    }
    std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  template <class T>
  std::vector<T> read_pod_array(uint64_t n) {  // n already checked against remaining()
    std::vector<T> v(n);
    if (n) std::memcpy(v.data(), b_.data() + pos_, n * sizeof(T));
    pos_ += n * sizeof(T);
    return v;
  }

 private:
  const Bytes& b_;
  const std::string& name_;
  size_t pos_ = 0;
};

bool valid_value_type(int32_t t) { return t >= 0 && t <= 12; }

// Smallest encoded size of one element, used to bound a count before allocating.
uint64_t min_elem_bytes(ValueType t) {
  switch (t) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    default: return 8;  // u64, i64, f64, and a string's length field
  }
}

Array read_array(Cursor& c, const std::string& field) {
  const int32_t et = c.read<int32_t>({field, " element type"});
  if (!valid_value_type(et)) c.fail(field + " element type", "a GGUF value type 0..12", std::to_string(et));
  if (et == static_cast<int32_t>(ValueType::ARRAY)) {
    c.fail(field + " element type", "a scalar or string element type", "an array of arrays (not supported)");
  }
  const ValueType t = static_cast<ValueType>(et);
  const uint64_t n = c.read<uint64_t>({field, " count"});
  if (n > c.remaining() / min_elem_bytes(t)) {
    c.fail(field + " count", "at most " + std::to_string(c.remaining() / min_elem_bytes(t)) +
                                 " elements in the remaining bytes",
           std::to_string(n));
  }
  Array a;
  switch (t) {
    case ValueType::U8: a.data = c.read_pod_array<uint8_t>(n); break;
    case ValueType::I8: a.data = c.read_pod_array<int8_t>(n); break;
    case ValueType::U16: a.data = c.read_pod_array<uint16_t>(n); break;
    case ValueType::I16: a.data = c.read_pod_array<int16_t>(n); break;
    case ValueType::U32: a.data = c.read_pod_array<uint32_t>(n); break;
    case ValueType::I32: a.data = c.read_pod_array<int32_t>(n); break;
    case ValueType::F32: a.data = c.read_pod_array<float>(n); break;
    case ValueType::U64: a.data = c.read_pod_array<uint64_t>(n); break;
    case ValueType::I64: a.data = c.read_pod_array<int64_t>(n); break;
    case ValueType::F64: a.data = c.read_pod_array<double>(n); break;
    case ValueType::BOOL: {
      const std::vector<uint8_t> raw = c.read_pod_array<uint8_t>(n);
      a.data = std::vector<bool>(raw.begin(), raw.end());
      break;
    }
    case ValueType::STRING: {
      std::vector<std::string> v;
      v.reserve(n);
      for (uint64_t i = 0; i < n; ++i) v.push_back(c.read_string({field, {}, static_cast<int64_t>(i)}));
      a.data = std::move(v);
      break;
    }
    case ValueType::ARRAY: break;  // rejected above
  }
  return a;
}

Value read_value(Cursor& c, ValueType t, const std::string& field) {
  switch (t) {
    case ValueType::U8: return Value{c.read<uint8_t>({field})};
    case ValueType::I8: return Value{c.read<int8_t>({field})};
    case ValueType::U16: return Value{c.read<uint16_t>({field})};
    case ValueType::I16: return Value{c.read<int16_t>({field})};
    case ValueType::U32: return Value{c.read<uint32_t>({field})};
    case ValueType::I32: return Value{c.read<int32_t>({field})};
    case ValueType::F32: return Value{c.read<float>({field})};
    case ValueType::BOOL: return Value{c.read<uint8_t>({field}) != 0};
    case ValueType::STRING: return Value{c.read_string({field})};
    case ValueType::ARRAY: return Value{read_array(c, field)};
    case ValueType::U64: return Value{c.read<uint64_t>({field})};
    case ValueType::I64: return Value{c.read<int64_t>({field})};
    case ValueType::F64: return Value{c.read<double>({field})};
  }
  return Value{};
}

}  // namespace

std::string describe(const Value& v) {
  if (v.type() != ValueType::ARRAY) return value_type_name(v.type());
  return std::string("array of ") + value_type_name(std::get<Array>(v.v).elem_type());
}

std::optional<ShapeProblem> check_shape(const std::vector<int64_t>& ne, int32_t type_id) {
  if (ne.empty() || ne.size() > 4) return ShapeProblem{"1 to 4 dimensions", std::to_string(ne.size())};
  int64_t numel = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    const std::string at = "ne[" + std::to_string(i) + "] = " + std::to_string(ne[i]);
    if (ne[i] < 1) return ShapeProblem{"every ne >= 1", at};
    if (ne[i] > kMaxNumel / numel) return ShapeProblem{"at most 2^40 elements", "a larger product at " + at};
    numel *= ne[i];
  }
  if (!is_supported_type(type_id)) {
    return ShapeProblem{"type F32 (0), F16 (1), Q8_0 (8) or BF16 (30)", "type id " + std::to_string(type_id)};
  }
  if (static_cast<TensorType>(type_id) == TensorType::Q8_0 && ne[0] % kQ8_0Block != 0) {
    return ShapeProblem{"ne[0] a multiple of 32 for Q8_0", std::to_string(ne[0])};
  }
  return std::nullopt;
}

const char* value_type_name(ValueType t) {
  static const char* const names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  const auto i = static_cast<int32_t>(t);
  return i >= 0 && i <= 12 ? names[i] : "invalid";
}

ValueType Array::elem_type() const {
  const size_t i = data.index();
  return static_cast<ValueType>(i < 9 ? i : i + 1);
}

size_t Array::size() const {
  return std::visit([](const auto& v) { return v.size(); }, data);
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : ne) n *= d;
  return n;
}

uint64_t TensorInfo::nbytes() const { return row_bytes(type, numel()); }

// ---- reading ----

Bytes::Bytes(std::vector<uint8_t> owned) {
  auto v = std::make_shared<std::vector<uint8_t>>(std::move(owned));
  data_ = v->data();
  size_ = v->size();
  owner_ = std::move(v);
}

Bytes Bytes::map_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno), "check the path and permissions");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    ::close(fd);
    throw Error("cannot read " + path + ": " + (err ? std::strerror(err) : "not a regular file"), "check the path");
  }
  Bytes b;
  if (st.st_size == 0) {
    ::close(fd);
    return b;
  }
  void* p = ::mmap(nullptr, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED) throw Error("cannot map " + path + ": " + std::strerror(err), "check the file is readable");
  const size_t n = (size_t)st.st_size;
  b.owner_ = std::shared_ptr<const void>(p, [n](const void* q) { ::munmap(const_cast<void*>(q), n); });
  b.data_ = static_cast<const uint8_t*>(p);
  b.size_ = n;
  b.mapped_ = true;
  return b;
}

File read_bytes(std::vector<uint8_t> bytes, std::string name) { return read_mapped(Bytes(std::move(bytes)), std::move(name)); }

File read_mapped(Bytes bytes, std::string name) {
  File f;
  f.path = std::move(name);
  f.bytes = std::move(bytes);
  Cursor c(f.bytes, f.path);

  if (f.bytes.size() < 4 || std::memcmp(f.bytes.data(), "GGUF", 4) != 0) {
    std::string found = f.bytes.empty() ? "an empty file" : "";
    for (size_t i = 0; i < f.bytes.size() && i < 4; ++i) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02x ", f.bytes[i]);
      found += buf;
    }
    c.fail("magic", "the bytes 'GGUF' (47 47 55 46)", found, "this is not a GGUF file (or it is truncated)");
  }
  c.read<uint32_t>({"magic"});
  f.version = c.read<uint32_t>({"version"});
  if (f.version != 3 && f.version != 2) {
    c.fail("version", "3 (or 2)", std::to_string(f.version),
           f.version == 1 ? "GGUF v1 is obsolete; re-convert the model with a current llama.cpp"
                          : "the file is damaged or was written by a newer tool");
  }
  const int64_t n_tensors = c.read<int64_t>({"tensor count"});
  const int64_t n_kv = c.read<int64_t>({"key-value count"});
  // Each tensor info takes >= 32 bytes and each key-value >= 13, which bounds the counts cheaply.
  if (n_tensors < 0 || static_cast<uint64_t>(n_tensors) > kMaxTensors ||
      static_cast<uint64_t>(n_tensors) > c.remaining() / 32) {
    c.fail("tensor count", count_limit(kMaxTensors, c.remaining(), 32), std::to_string(n_tensors));
  }
  if (n_kv < 0 || static_cast<uint64_t>(n_kv) > kMaxKv || static_cast<uint64_t>(n_kv) > c.remaining() / 13) {
    c.fail("key-value count", count_limit(kMaxKv, c.remaining(), 13), std::to_string(n_kv));
  }

  f.kv.reserve(static_cast<size_t>(n_kv));
  std::unordered_set<std::string> keys;
  for (int64_t i = 0; i < n_kv; ++i) {
    const std::string field = "key-value " + std::to_string(i);
    std::string key = c.read_string({field, " key"});
    const std::string kfield = "key " + in_quotes(key);
    const int32_t t = c.read<int32_t>({kfield, " value type"});
    if (!valid_value_type(t)) c.fail(kfield + " value type", "a GGUF value type 0..12", std::to_string(t));
    Value v = read_value(c, static_cast<ValueType>(t), kfield);
    if (!keys.insert(key).second) c.fail(kfield, "unique keys", "a second " + in_quotes(key));
    f.kv.push_back({std::move(key), std::move(v)});
  }

  if (const Value* a = f.find("general.alignment")) {
    if (a->type() != ValueType::U32) c.fail("key 'general.alignment'", "type u32", describe(*a));
    const uint32_t al = std::get<uint32_t>(a->v);
    if (!std::has_single_bit(al)) c.fail("key 'general.alignment'", "a power of two", std::to_string(al));
    f.alignment = al;
  }

  f.tensors.reserve(static_cast<size_t>(n_tensors));
  std::unordered_set<std::string> names;
  uint64_t expected_offset = 0;
  for (int64_t i = 0; i < n_tensors; ++i) {
    const std::string field = "tensor " + std::to_string(i);
    TensorInfo t;
    t.name = c.read_string({field, " name"}, kMaxTensorName);
    const std::string tfield = field + " " + in_quotes(t.name);
    const uint32_t n_dims = c.read<uint32_t>({tfield, " n_dims"});
    if (n_dims < 1 || n_dims > 4) c.fail(tfield + " n_dims", "1..4", std::to_string(n_dims));
    t.ne.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) t.ne[d] = c.read<int64_t>({tfield, " ne", d});
    const int32_t type_id = c.read<int32_t>({tfield, " type"});
    if (const auto bad = check_shape(t.ne, type_id)) {
      c.fail(tfield + " shape/type", bad->expected, bad->found,
             is_supported_type(type_id) ? kHint
                                        : "heirloom reads F32, F16, BF16 and Q8_0 tensors; convert the model "
                                          "to one of these with llama.cpp's llama-quantize");
    }
    t.type = static_cast<TensorType>(type_id);
    t.offset = c.read<uint64_t>({tfield, " offset"});
    if (t.offset != expected_offset) {
      c.fail(tfield + " offset", std::to_string(expected_offset) + " (previous tensors' padded sizes)",
             std::to_string(t.offset));
    }
    if (!names.insert(t.name).second) c.fail(tfield + " name", "unique tensor names", "a duplicate");
    expected_offset += align_up(t.nbytes(), f.alignment);  // <= 1e6 * 2^43: cannot overflow
    f.tensors.push_back(std::move(t));
  }

  f.data_offset = align_up(c.pos(), f.alignment);
  for (const TensorInfo& t : f.tensors) {
    const uint64_t end = f.data_offset + t.offset + t.nbytes();
    if (end > f.bytes.size()) {
      throw Error(f.path + ": tensor " + in_quotes(t.name) + " data: expected bytes " +
                      std::to_string(f.data_offset + t.offset) + ".." + std::to_string(end) +
                      ", found a file of " + std::to_string(f.bytes.size()) + " bytes",
                  kHint);
    }
  }
  return f;
}

File read_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error("cannot read " + path + ": expected a regular file, found " +
                    (std::filesystem::exists(path, ec) ? "something else (a directory?)" : "nothing"),
                "check the path");
  }
  return read_mapped(Bytes::map_file(path), path);
}

// ---- lookups ----

const Value* File::find(std::string_view key) const {
  for (const KeyValue& e : kv)
    if (e.key == key) return &e.value;
  return nullptr;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

[[noreturn]] void missing(const File& f, std::string_view key, const char* want) {
  throw Error(f.path + ": missing key " + in_quotes(key) + " (expected " + want + ")",
              "the file lacks this setting; it may be another kind of GGUF file or written by an "
              "incompatible tool");
}

template <class T>
const T& get_scalar(const File& f, std::string_view key, ValueType want) {
  const Value* v = f.find(key);
  if (!v) missing(f, key, value_type_name(want));
  if (v->type() != want) {
    throw Error(f.path + ": key " + in_quotes(key) + ": expected type " + value_type_name(want) + ", found " +
                    describe(*v),
                "the value was written with the wrong type; llama.cpp would reject it too");
  }
  return std::get<T>(v->v);
}

template <class T>
std::vector<T> get_array(const File& f, std::string_view key, ValueType want) {
  const std::string want_s = std::string("array of ") + value_type_name(want);
  const Value* v = f.find(key);
  if (!v) missing(f, key, want_s.c_str());
  const Array* a = std::get_if<Array>(&v->v);
  if (!a || a->elem_type() != want) {
    throw Error(f.path + ": key " + in_quotes(key) + ": expected type " + want_s + ", found " + describe(*v),
                "the value was written with the wrong type; llama.cpp would reject it too");
  }
  return std::get<std::vector<T>>(a->data);
}

}  // namespace

#define HEIRLOOM_GETTER(NAME, T, VT)                                                       \
  T File::NAME(std::string_view key) const { return get_scalar<T>(*this, key, VT); }       \
  T File::NAME(std::string_view key, T def) const {                                        \
    return find(key) ? get_scalar<T>(*this, key, VT) : def;                                \
  }
HEIRLOOM_GETTER(get_u32, uint32_t, ValueType::U32)
HEIRLOOM_GETTER(get_i32, int32_t, ValueType::I32)
HEIRLOOM_GETTER(get_u64, uint64_t, ValueType::U64)
HEIRLOOM_GETTER(get_f32, float, ValueType::F32)
HEIRLOOM_GETTER(get_bool, bool, ValueType::BOOL)
HEIRLOOM_GETTER(get_string, std::string, ValueType::STRING)
#undef HEIRLOOM_GETTER

#define HEIRLOOM_ARRAY_GETTER(NAME, T, VT)                                                            \
  std::vector<T> File::NAME(std::string_view key) const { return get_array<T>(*this, key, VT); }      \
  std::vector<T> File::NAME(std::string_view key, std::vector<T> def) const {                         \
    return find(key) ? get_array<T>(*this, key, VT) : def;                                            \
  }
HEIRLOOM_ARRAY_GETTER(get_string_array, std::string, ValueType::STRING)
HEIRLOOM_ARRAY_GETTER(get_f32_array, float, ValueType::F32)
HEIRLOOM_ARRAY_GETTER(get_i32_array, int32_t, ValueType::I32)
#undef HEIRLOOM_ARRAY_GETTER

}  // namespace heirloom::gguf
