/**
 * A private Redis (Kadi's Celery broker) on 127.0.0.1:<random>, run as the kadi account so its
 * dump.rdb belongs to kadi, with a few keys and a first snapshot on disk.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type Daemon, freePort, runOk, startDaemon, waitForPort } from './proc';
import { type Account, BIN } from './system';

export interface RedisServer {
  daemon: Daemon;
  port: number;
  dataDir: string;
  dumpPath: string;
}

export async function startRedis(root: string, owner: Account): Promise<RedisServer> {
  const dataDir = path.join(root, 'redis');
  fs.mkdirSync(dataDir, { mode: 0o750 });
  fs.chownSync(dataDir, owner.uid, owner.gid);
  const port = await freePort();
  const config = path.join(dataDir, 'redis.conf');
  fs.writeFileSync(
    config,
    [
      '# Kadi Ops sandbox host (test harness)',
      `port ${port}`,
      'bind 127.0.0.1',
      'protected-mode yes',
      'daemonize no',
      `dir ${dataDir}`,
      'dbfilename dump.rdb',
      'save ""',
      'appendonly no',
      `logfile ${path.join(dataDir, 'redis.log')}`,
      '',
    ].join('\n'),
  );
  fs.chownSync(config, owner.uid, owner.gid);
  const daemon = startDaemon('redis-server', BIN.redisServer, [config], { uid: owner.uid, gid: owner.gid, cwd: dataDir, env: { PATH: process.env.PATH, HOME: dataDir }, logFile: path.join(root, 'redis.stdout.log') });
  await waitForPort(daemon, port);
  const cli = (...args: string[]): Promise<string> => runOk(BIN.redisCli, ['-h', '127.0.0.1', '-p', String(port), ...args]);
  // What Celery and the rate limiter leave behind on a real host.
  await cli('SET', '_kombu.binding.celery', 'celery\x06\x16\x06\x16celery');
  await cli('RPUSH', 'celery', '{"body": "e30=", "headers": {"task": "kadi.main.periodic_cleanup"}}');
  await cli('SET', 'LIMITER/127.0.0.1/api/1/minute', '3', 'EX', '3600');
  await cli('SAVE');
  return { daemon, port, dataDir, dumpPath: path.join(dataDir, 'dump.rdb') };
}
