# --- facts ----------------------------------------------------------------------------------
# facts KADI_CLI KADI_CONFIG BACKUP_DIR PGHOST PGPORT PGDB PGUSER   (password on stdin)
cmd_facts() {
  local cli=$1 cfg=$2 backup_dir=$3 host=$4 port=$5 db=$6 user=$7
  FACTS_WORK=$(mktemp -d)
  trap 'rm -rf "$FACTS_WORK"' EXIT
  make_passfile "$FACTS_WORK" "$host" "$port" "$db" "$user"
  echo "hostname=$(hostname -f 2>/dev/null || hostname)"
  # Identity of what `kadi utils config` depends on, so a client may reuse what it read before.
  local stamp
  if stamp=$(stat -L -c '%n:%Y:%s:%i' -- "$cfg" "$(command -v "$cli" || echo "$cli")" 2>/dev/null); then
    echo "kadi_config_stamp=$(printf '%s' "$stamp" | tr '\n' ' ')"
    echo "kadi_config_newest_mtime=$(printf '%s\n' "$stamp" | awk -F: '{ print $(NF - 2) }' | sort -n | tail -n1)"
  fi
  echo "now_epoch=$(date +%s)"
  echo "remote_user=$(id -un)"
  local v
  if v=$(KADI_CONFIG_FILE=$cfg "$cli" --version 2>/dev/null | tail -n1); then echo "kadi_version=$v"; else echo "kadi_version_error=kadi --version failed"; fi
  local psql num
  if psql=$(any_psql); then
    echo "psql=$psql"
    if num=$("$psql" -X -At -h "$host" -p "$port" -U "$user" -d "$db" -w -c 'show server_version_num' 2>&1); then
      echo "pg_server_version_num=$num"
      local major=$((num / 10000))
      echo "pg_server_major=$major"
      echo "pg_dump=$(pg_tool_for_major pg_dump "$major")"
      echo "pg_restore=$(pg_tool_for_major pg_restore "$major")"
      local rev
      if rev=$("$psql" -X -At -h "$host" -p "$port" -U "$user" -d "$db" -w -c 'select version_num from alembic_version' 2>/dev/null); then
        echo "alembic_revision=$rev"
      fi
    else
      echo "pg_error=$(printf '%s' "$num" | tr '\n' ' ')"
    fi
  else
    echo "pg_error=no psql client found"
  fi
  local d
  for d in /usr/lib/postgresql/*/bin/pg_dump; do [ -x "$d" ] && echo "pg_dump_available=$d"; done
  if [ -d "$backup_dir" ]; then
    echo "backup_dir_exists=yes"
    df -Pk "$backup_dir" | awk 'NR==2 {print "backup_free_kb=" $4; print "backup_fs_size_kb=" $2}'
  else
    echo "backup_dir_exists=no"
  fi
  local t
  for t in rsync zstd pigz gzip tar sha256sum flock setsid; do
    command -v "$t" >/dev/null 2>&1 && echo "tool_$t=yes" || echo "tool_$t=no"
  done
}


