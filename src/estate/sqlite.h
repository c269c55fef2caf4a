// A thin RAII layer over SQLite's C API: a connection, prepared statements with typed binds and columns,
// and a transaction that rolls back unless committed. Every failure is a heirloom::Error naming the file.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

namespace heirloom::estate::sql {

class Db {
 public:
  Db() = default;
  Db(const std::string& path, bool create);
  Db(Db&& o) noexcept : db_(o.db_), path_(std::move(o.path_)) { o.db_ = nullptr; }
  Db& operator=(Db&& o) noexcept;
  ~Db();
  void exec(const std::string& sql);
  [[noreturn]] void fail(const std::string& what) const;
  sqlite3* raw() const { return db_; }
  const std::string& path() const { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Stmt {
 public:
  Stmt(const Db& db, const std::string& sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& v);
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind_blob(int i, const std::vector<uint8_t>& v);
  bool step();  // true while there is a row
  void run() { while (step()) {} }
  std::string text(int col) const;
  int64_t integer(int col) const;
  double real(int col) const;
  std::vector<uint8_t> blob(int col) const;

 private:
  const Db& db_;
  sqlite3_stmt* st_ = nullptr;
};

// BEGIN IMMEDIATE (the write lock up front, so two writers never deadlock halfway); rolls back on scope exit
// unless commit() ran.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
  ~Transaction();
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace heirloom::estate::sql
