// The registry's database, behind one small interface with two backends: SQLite (one file, one machine;
// sqlite.cpp) and PostgreSQL (a server many machines share; postgres.cpp, libpq). Statements are written
// once with `?` placeholders; Db::dialect() tells the few places whose SQL differs. Every failure is a
// heirloom::Error naming the database.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace heirloom::estate::sql {

enum class Dialect { sqlite, postgres };

// One statement: binds (1-based), then step() through its rows.
class Cursor {
 public:
  virtual ~Cursor() = default;
  virtual void bind_text(int i, const std::string& v) = 0;
  virtual void bind_int(int i, int64_t v) = 0;
  virtual void bind_real(int i, double v) = 0;
  virtual void bind_blob(int i, const std::vector<uint8_t>& v) = 0;
  virtual bool step() = 0;  // true while there is a row
  virtual std::string text(int col) const = 0;
  virtual int64_t integer(int col) const = 0;
  virtual double real(int col) const = 0;
  virtual std::vector<uint8_t> blob(int col) const = 0;
};

class Connection {
 public:
  virtual ~Connection() = default;
  virtual void exec(const std::string& sql) = 0;  // one or more statements, no results
  virtual std::unique_ptr<Cursor> prepare(const std::string& sql) = 0;
  // Starts a transaction that holds the write lock from its first statement, so two writers never
  // deadlock halfway (SQLite: BEGIN IMMEDIATE; PostgreSQL: BEGIN and a transaction advisory lock).
  virtual void begin_write() = 0;
  virtual Dialect dialect() const = 0;
  virtual const std::string& name() const = 0;  // the file, or the server without its password
};

// "postgresql://..." or "postgres://..." (libpq's URI) names a server; anything else is a SQLite file.
bool is_postgres(const std::string& location);
// The start of a statement, up to its first parenthesis or line break, for error messages.
std::string statement_head(const std::string& sql);
std::unique_ptr<Connection> open_sqlite(const std::string& path, bool create);
std::unique_ptr<Connection> open_postgres(const std::string& uri);

class Db {
 public:
  Db() = default;
  explicit Db(std::unique_ptr<Connection> c) : c_(std::move(c)) {}
  void exec(const std::string& sql) { c_->exec(sql); }
  Connection& conn() const { return *c_; }
  Dialect dialect() const { return c_->dialect(); }
  const std::string& path() const { return c_->name(); }

 private:
  std::unique_ptr<Connection> c_;
};

class Stmt {
 public:
  Stmt(const Db& db, const std::string& sql) : c_(db.conn().prepare(sql)) {}
  Stmt& bind(int i, const std::string& v) { c_->bind_text(i, v); return *this; }
  Stmt& bind(int i, int64_t v) { c_->bind_int(i, v); return *this; }
  Stmt& bind(int i, double v) { c_->bind_real(i, v); return *this; }
  Stmt& bind_blob(int i, const std::vector<uint8_t>& v) { c_->bind_blob(i, v); return *this; }
  bool step() { return c_->step(); }
  void run() { while (step()) {} }
  std::string text(int col) const { return c_->text(col); }
  int64_t integer(int col) const { return c_->integer(col); }
  double real(int col) const { return c_->real(col); }
  std::vector<uint8_t> blob(int col) const { return c_->blob(col); }

 private:
  std::unique_ptr<Cursor> c_;
};

// The write transaction above; rolls back on scope exit unless commit() ran.
class Transaction {
 public:
  explicit Transaction(Db& db) : db_(db) { db_.conn().begin_write(); }
  ~Transaction();
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace heirloom::estate::sql
