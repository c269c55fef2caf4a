// GGUF v3 files: a generic reader (gguf.cpp) and an atomic writer (gguf_write.cpp); layout in
// shared/GGUF-NOTES.md.
// Invariants: read_file/read_bytes validate every count, length, shape and offset before allocating
// or reading, so a damaged or hostile file yields heirloom::Error, never a crash or a huge allocation.
// A File that was returned satisfies: tensor names unique and < 64 bytes, 1..4 dims, each ne >= 1,
// supported type, offsets as llama.cpp lays them out, every tensor inside `bytes`.
// Key-values keep file order; a Writer writes them in insertion order.
// Not here: the meaning of keys (model config, tokenizer) or converting tensors; those live with
// their owners. Arrays of arrays are rejected (llama.cpp rejects them too).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/half.h"

namespace heirloom::gguf {

using heirloom::TensorType;

enum class ValueType : int32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* value_type_name(ValueType t);  // "u32", "string", ...

constexpr size_t kMaxTensorName = 63;  // bytes; ggml's GGML_MAX_NAME (64) counts the NUL

// An array's elements, stored as a typed vector. Alternative i holds element type i for i < 9 and
// type i + 1 after that (there are no arrays of arrays).
struct Array {
  std::variant<std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>, std::vector<int16_t>,
               std::vector<uint32_t>, std::vector<int32_t>, std::vector<float>, std::vector<bool>,
               std::vector<std::string>, std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>>
      data;
  ValueType elem_type() const;
  size_t size() const;
  bool operator==(const Array&) const = default;
};

// One metadata value. The variant index is the GGUF value type id, so type() is exact.
struct Value {
  std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool, std::string, Array,
               uint64_t, int64_t, double>
      v;
  ValueType type() const { return static_cast<ValueType>(v.index()); }
  bool operator==(const Value&) const = default;  // floats compare by value (NaN != NaN)
};

// "u32", "array of f32", ...: for messages that say which type was found.
std::string describe(const Value& v);

struct KeyValue {
  std::string key;
  Value value;
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ne[0] varies fastest
  TensorType type = TensorType::F32;
  uint64_t offset = 0;  // relative to File::data_offset
  int64_t numel() const;
  uint64_t nbytes() const;
};

// What is wrong with a tensor's shape/type pair (1..4 dims, each ne >= 1, at most 2^40 elements, a
// supported type, ne[0] % 32 == 0 for Q8_0), or nullopt when it is fine. Shared by reader and writer.
struct ShapeProblem {
  std::string expected, found;
};
std::optional<ShapeProblem> check_shape(const std::vector<int64_t>& ne, int32_t type_id);

// A file's bytes: owned (read_bytes) or a private (copy-on-write) memory map of the file (read_file), so a
// model's tensor data is read from the page cache rather than copied into a buffer first. The mapping is
// writable so that a model whose F32 tensors are used in place can be changed without touching the file.
class Bytes {
 public:
  Bytes() = default;
  explicit Bytes(std::vector<uint8_t> owned);
  static Bytes map_file(const std::string& path);  // Error when the file cannot be opened or mapped
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint8_t operator[](size_t i) const { return data_[i]; }
  bool mapped() const { return mapped_; }
  const std::shared_ptr<const void>& keeper() const { return owner_; }  // keeps the bytes alive

 private:
  std::shared_ptr<const void> owner_;  // the vector, or the mapping (unmapped with its last copy)
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  bool mapped_ = false;
};

struct File {
  std::string path;  // where it was read from (for messages); "<memory>" for read_bytes
  uint32_t version = 3;
  uint32_t alignment = 32;
  std::vector<KeyValue> kv;
  std::vector<TensorInfo> tensors;
  Bytes bytes;                 // the whole file
  uint64_t data_offset = 0;    // start of the data section in `bytes`

  const Value* find(std::string_view key) const;
  const TensorInfo* find_tensor(std::string_view name) const;
  const uint8_t* tensor_data(const TensorInfo& t) const { return bytes.data() + data_offset + t.offset; }

  // Typed getters: throw Error if the key is missing or holds another type (no silent conversion,
  // because llama.cpp is just as strict). The overloads with a default only tolerate a missing key.
  uint32_t get_u32(std::string_view key) const;
  uint32_t get_u32(std::string_view key, uint32_t def) const;
  int32_t get_i32(std::string_view key) const;
  int32_t get_i32(std::string_view key, int32_t def) const;
  uint64_t get_u64(std::string_view key) const;
  uint64_t get_u64(std::string_view key, uint64_t def) const;
  float get_f32(std::string_view key) const;
  float get_f32(std::string_view key, float def) const;
  bool get_bool(std::string_view key) const;
  bool get_bool(std::string_view key, bool def) const;
  std::string get_string(std::string_view key) const;
  std::string get_string(std::string_view key, std::string def) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key, std::vector<std::string> def) const;
  std::vector<float> get_f32_array(std::string_view key) const;
  std::vector<float> get_f32_array(std::string_view key, std::vector<float> def) const;
  std::vector<int32_t> get_i32_array(std::string_view key) const;
  std::vector<int32_t> get_i32_array(std::string_view key, std::vector<int32_t> def) const;
};

// Shared by the reader and the writer.
uint64_t align_up(uint64_t x, uint64_t a);
std::string in_quotes(std::string_view s);

File read_file(const std::string& path);
File read_bytes(std::vector<uint8_t> bytes, std::string name = "<memory>");
File read_mapped(Bytes bytes, std::string name);

// Builds a GGUF file. Alignment is 32 unless "general.alignment" is set (u32, power of two).
// add_tensor keeps the POINTER, not a copy (models can be gigabytes): the data must stay alive and
// unchanged until write()/to_bytes() returns. Shapes, sizes and names are validated on add.
class Writer {
 public:
  void set(std::string key, Value value);  // replaces an existing key in place, else appends
  void set_u8(std::string key, uint8_t v) { set(std::move(key), Value{v}); }
  void set_i8(std::string key, int8_t v) { set(std::move(key), Value{v}); }
  void set_u16(std::string key, uint16_t v) { set(std::move(key), Value{v}); }
  void set_i16(std::string key, int16_t v) { set(std::move(key), Value{v}); }
  void set_u32(std::string key, uint32_t v) { set(std::move(key), Value{v}); }
  void set_i32(std::string key, int32_t v) { set(std::move(key), Value{v}); }
  void set_u64(std::string key, uint64_t v) { set(std::move(key), Value{v}); }
  void set_i64(std::string key, int64_t v) { set(std::move(key), Value{v}); }
  void set_f32(std::string key, float v) { set(std::move(key), Value{v}); }
  void set_f64(std::string key, double v) { set(std::move(key), Value{v}); }
  void set_bool(std::string key, bool v) { set(std::move(key), Value{v}); }
  void set_string(std::string key, std::string v) { set(std::move(key), Value{std::move(v)}); }
  void set_string_array(std::string key, std::vector<std::string> v);
  void set_f32_array(std::string key, std::vector<float> v);
  void set_i32_array(std::string key, std::vector<int32_t> v);

  void add_tensor(std::string name, std::vector<int64_t> ne, TensorType type, const void* data,
                  size_t nbytes);

  const std::vector<KeyValue>& kv() const { return kv_; }
  std::vector<uint8_t> to_bytes() const;
  // Atomic: writes path + ".tmp.<pid>", flushes and fsyncs it, then renames over `path`. On any
  // failure the temporary file is removed and Error is thrown; `path` is then untouched.
  void write(const std::string& path) const;

 private:
  struct Pending {
    TensorInfo info;
    const void* data;
  };
  uint32_t alignment() const;
  std::vector<uint8_t> header() const;  // everything before the data section, padding included
  std::vector<KeyValue> kv_;
  std::vector<Pending> tensors_;
};

}  // namespace heirloom::gguf
