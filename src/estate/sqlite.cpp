// The registry on SQLite: one file, WAL journal, synchronous=FULL. See sql.h.
#include <sqlite3.h>

#include "estate/sql.h"
#include "heirloom/error.h"

namespace heirloom::estate::sql {

namespace {

[[noreturn]] void fail(sqlite3* db, const std::string& path, const std::string& what) {
  const int code = sqlite3_errcode(db);
  const bool corrupt = (code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB;
  throw Error("registry " + path + ": " + what + ": " + sqlite3_errmsg(db),
              corrupt ? "the file is not an intact SQLite database; restore it from a copy" : "");
}

class SqliteCursor final : public Cursor {
 public:
  SqliteCursor(sqlite3* db, const std::string& path, const std::string& sql) : db_(db), path_(path) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st_, nullptr) != SQLITE_OK) fail(db_, path_, "preparing " + sql.substr(0, 40));
  }
  ~SqliteCursor() override { sqlite3_finalize(st_); }
  void bind_text(int i, const std::string& v) override {
    check(sqlite3_bind_text(st_, i, v.data(), (int)v.size(), SQLITE_TRANSIENT));
  }
  void bind_int(int i, int64_t v) override { check(sqlite3_bind_int64(st_, i, v)); }
  void bind_real(int i, double v) override { check(sqlite3_bind_double(st_, i, v)); }
  void bind_blob(int i, const std::vector<uint8_t>& v) override {
    check(sqlite3_bind_blob64(st_, i, v.data(), v.size(), SQLITE_TRANSIENT));
  }
  bool step() override {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, path_, "step");
  }
  std::string text(int col) const override {
    const auto* p = sqlite3_column_text(st_, col);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(st_, col)) : std::string();
  }
  int64_t integer(int col) const override { return sqlite3_column_int64(st_, col); }
  double real(int col) const override { return sqlite3_column_double(st_, col); }
  std::vector<uint8_t> blob(int col) const override {
    const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st_, col));
    return p ? std::vector<uint8_t>(p, p + sqlite3_column_bytes(st_, col)) : std::vector<uint8_t>();
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) fail(db_, path_, "bind");
  }
  sqlite3* db_;
  const std::string& path_;
  sqlite3_stmt* st_ = nullptr;
};

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(const std::string& path, bool create) : path_(path) {
    const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX | (create ? SQLITE_OPEN_CREATE : 0);
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      db_ = nullptr;
      throw Error("cannot open the registry " + path + ": " + msg,
                  create ? "check the folder exists and is writable" : "create it with `heirloom estate init`");
    }
    sqlite3_busy_timeout(db_, 10000);  // concurrent writers wait for each other rather than fail
    sqlite3_extended_result_codes(db_, 1);
  }
  ~SqliteConnection() override { sqlite3_close(db_); }
  void exec(const std::string& sql) override {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      sqlite3_free(err);
      fail(db_, path_, statement_head(sql));
    }
  }
  std::unique_ptr<Cursor> prepare(const std::string& sql) override { return std::make_unique<SqliteCursor>(db_, path_, sql); }
  void begin_write() override { exec("BEGIN IMMEDIATE"); }
  Dialect dialect() const override { return Dialect::sqlite; }
  const std::string& name() const override { return path_; }

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace

std::unique_ptr<Connection> open_sqlite(const std::string& path, bool create) {
  return std::make_unique<SqliteConnection>(path, create);
}

}  // namespace heirloom::estate::sql
