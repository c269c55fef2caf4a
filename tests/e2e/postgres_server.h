// A real PostgreSQL server for the tests (issue 10): initdb into a temporary folder, started on a free
// loopback port with trust authentication, stopped and removed when the tests end. PostgreSQL refuses to
// run as root, so under root (CI) it runs as Debian's `postgres` user.
#pragma once
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "estate/sql.h"

namespace heirloom::testing {

class PostgresServer {
 public:
  // The server, started on first use; empty error() when it runs.
  static PostgresServer& instance() {
    static PostgresServer s;
    return s;
  }
  const std::string& error() const { return error_; }
  // A new, empty database on the server; its URL.
  std::string fresh_database(const std::string& name) {
    estate::sql::open_postgres(url("postgres"))->exec("CREATE DATABASE " + name);
    return url(name);
  }
  std::string url(const std::string& db) const {
    return "postgresql://heirloom@127.0.0.1:" + std::to_string(port_) + "/" + db;
  }
  ~PostgresServer() {
    if (started_) sh(bin_ + "/pg_ctl -D " + dir_ + "/data -m immediate stop >/dev/null 2>&1");
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

 private:
  PostgresServer() {
    namespace fs = std::filesystem;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec))
      if (fs::exists(e.path() / "bin/initdb") && e.path().string() + "/bin" > bin_) bin_ = e.path().string() + "/bin";
    if (bin_.empty()) {
      error_ = "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); scripts/setup installs it";
      return;
    }
    char tmpl[] = "/tmp/heirloom_pg_XXXXXX";
    if (!mkdtemp(tmpl)) {
      error_ = "cannot make a temporary folder";
      return;
    }
    dir_ = tmpl;
    if (geteuid() == 0) {
      const passwd* pg = getpwnam("postgres");
      if (!pg || chown(dir_.c_str(), pg->pw_uid, pg->pw_gid) != 0) {
        error_ = "running as root, and there is no `postgres` user to run the server as";
        return;
      }
      as_ = "runuser -u postgres -- ";
    }
    port_ = free_port();
    if (sh(bin_ + "/initdb -D " + dir_ + "/data -A trust -U heirloom -E UTF8 --no-sync > " + dir_ + "/initdb.log 2>&1") != 0) {
      error_ = "initdb failed; see " + dir_ + "/initdb.log";
      return;
    }
    const std::string opts = "-p " + std::to_string(port_) + " -k " + dir_ + " -c listen_addresses=127.0.0.1 -c fsync=off";
    if (sh(bin_ + "/pg_ctl -D " + dir_ + "/data -l " + dir_ + "/server.log -o '" + opts + "' -w start >/dev/null 2>&1") != 0) {
      error_ = "the PostgreSQL server did not start; see " + dir_ + "/server.log";
      return;
    }
    started_ = true;
  }
  int sh(const std::string& cmd) const { return std::system((as_ + cmd).c_str()); }
  static int free_port() {
    const int s = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t n = sizeof a;
    bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    getsockname(s, reinterpret_cast<sockaddr*>(&a), &n);
    close(s);
    return ntohs(a.sin_port);
  }
  std::string bin_, dir_, as_, error_;
  int port_ = 0;
  bool started_ = false;
};

}  // namespace heirloom::testing
