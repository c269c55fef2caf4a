// The registry on a PostgreSQL server (libpq), for many machines writing to one estate. See sql.h.
// Statements keep sql.h's `?` placeholders (turned into $1, $2, ...); values go as text, blobs as binary,
// and results come back as text (bytea in its hex form).
#include <libpq-fe.h>

#include <cstdlib>

#include "estate/sql.h"
#include "heirloom/error.h"

namespace heirloom::estate::sql {

namespace {

// The URI without its password, for messages.
std::string redacted(const std::string& uri) {
  const size_t scheme = uri.find("://"), at = uri.find('@');
  if (scheme == std::string::npos || at == std::string::npos) return uri;
  const size_t colon = uri.find(':', scheme + 3);
  return colon != std::string::npos && colon < at ? uri.substr(0, colon) + ":***" + uri.substr(at) : uri;
}

// `?` → `$n`, outside quoted strings.
std::string numbered(const std::string& sql) {
  std::string out;
  int n = 0;
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    if (c == '?' && !quoted) {
      out += '$';
      out += std::to_string(++n);
    } else {
      out += c;
    }
  }
  return out;
}

struct Result {
  PGresult* r = nullptr;
  ~Result() { PQclear(r); }
};

class PgCursor final : public Cursor {
 public:
  PgCursor(PGconn* c, const std::string& name, const std::string& sql) : c_(c), name_(name), sql_(numbered(sql)) {}
  void bind_text(int i, const std::string& v) override { set(i, v, 0); }
  void bind_int(int i, int64_t v) override { set(i, std::to_string(v), 0); }
  void bind_real(int i, double v) override {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    set(i, buf, 0);
  }
  void bind_blob(int i, const std::vector<uint8_t>& v) override { set(i, std::string(v.begin(), v.end()), 1); }
  bool step() override {
    if (!res_.r) {
      std::vector<const char*> values(vals_.size());
      std::vector<int> lengths(vals_.size());
      for (size_t i = 0; i < vals_.size(); ++i) values[i] = vals_[i].data(), lengths[i] = (int)vals_[i].size();
      res_.r = PQexecParams(c_, sql_.c_str(), (int)vals_.size(), nullptr, values.data(), lengths.data(), formats_.data(), 0);
      const ExecStatusType st = PQresultStatus(res_.r);
      if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)
        throw Error("registry " + name_ + ": " + sql_.substr(0, 40) + ": " + PQresultErrorMessage(res_.r));
      row_ = -1;
    }
    return ++row_ < PQntuples(res_.r);
  }
  std::string text(int col) const override { return std::string(PQgetvalue(res_.r, row_, col), PQgetlength(res_.r, row_, col)); }
  int64_t integer(int col) const override { return std::strtoll(PQgetvalue(res_.r, row_, col), nullptr, 10); }
  double real(int col) const override { return std::strtod(PQgetvalue(res_.r, row_, col), nullptr); }
  std::vector<uint8_t> blob(int col) const override {
    size_t n = 0;
    unsigned char* p = PQunescapeBytea(reinterpret_cast<const unsigned char*>(PQgetvalue(res_.r, row_, col)), &n);
    if (!p) throw Error("registry " + name_ + ": cannot decode a stored file");
    std::vector<uint8_t> out(p, p + n);
    PQfreemem(p);
    return out;
  }

 private:
  void set(int i, std::string v, int format) {
    if (i < 1) throw Error("internal: SQL parameters count from 1");
    if ((int)vals_.size() < i) vals_.resize(i), formats_.resize(i, 0);
    vals_[i - 1] = std::move(v);
    formats_[i - 1] = format;
  }
  PGconn* c_;
  const std::string& name_;
  std::string sql_;
  std::vector<std::string> vals_;
  std::vector<int> formats_;
  Result res_;
  int row_ = -1;
};

class PgConnection final : public Connection {
 public:
  explicit PgConnection(const std::string& uri) : name_(redacted(uri)) {
    c_ = PQconnectdb(uri.c_str());
    if (PQstatus(c_) != CONNECTION_OK) {
      const std::string msg = PQerrorMessage(c_);
      PQfinish(c_);
      throw Error("cannot connect to the registry server " + name_ + ": " + msg,
                  "is PostgreSQL running there, and does the URL name a database you may use?");
    }
    PQsetNoticeProcessor(c_, [](void*, const char*) {}, nullptr);  // "already exists, skipping" is not news
  }
  ~PgConnection() override { PQfinish(c_); }
  void exec(const std::string& sql) override {
    Result r{PQexec(c_, sql.c_str())};
    const ExecStatusType st = PQresultStatus(r.r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
      throw Error("registry " + name_ + ": " + statement_head(sql) + ": " + PQresultErrorMessage(r.r));
  }
  std::unique_ptr<Cursor> prepare(const std::string& sql) override { return std::make_unique<PgCursor>(c_, name_, sql); }
  // One registry-wide lock per write transaction, as SQLite's BEGIN IMMEDIATE: writers take turns.
  void begin_write() override { exec("BEGIN; SELECT pg_advisory_xact_lock(4242424242)"); }
  Dialect dialect() const override { return Dialect::postgres; }
  const std::string& name() const override { return name_; }

 private:
  PGconn* c_ = nullptr;
  std::string name_;
};

}  // namespace

std::unique_ptr<Connection> open_postgres(const std::string& uri) { return std::make_unique<PgConnection>(uri); }

}  // namespace heirloom::estate::sql
