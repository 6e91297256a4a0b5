import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Paths of a throwaway CA and a server certificate signed by it (valid for 127.0.0.1, ::1 and localhost). */
export interface TlsMaterial {
  readonly dir: string;
  readonly caCert: string;
  readonly cert: string;
  readonly key: string;
}

/**
 * Generates a throwaway CA and a server certificate with openssl (EC P-256, valid one day) under `dir`.
 * For tests only: the CA key is kept next to it.
 */
export async function createTlsMaterial(dir: string): Promise<TlsMaterial> {
  mkdirSync(dir, { recursive: true });
  const p = (f: string) => join(dir, f);
  const openssl = async (...args: string[]) => {
    try {
      await run("openssl", args, { cwd: dir });
    } catch (err) {
      throw new Error(`openssl ${args[0]} failed: ${(err as Error).message}. Is openssl installed?`);
    }
  };
  await openssl(
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=Coordis Test CA",
    "-keyout",
    p("ca.key"),
    "-out",
    p("ca.crt"),
  );
  await openssl(
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-subj",
    "/CN=localhost",
    "-keyout",
    p("server.key"),
    "-out",
    p("server.csr"),
  );
  const ext = p("san.ext");
  writeFileSync(ext, "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n");
  await openssl(
    "x509",
    "-req",
    "-in",
    p("server.csr"),
    "-CA",
    p("ca.crt"),
    "-CAkey",
    p("ca.key"),
    "-CAcreateserial",
    "-days",
    "1",
    "-extfile",
    ext,
    "-out",
    p("server.crt"),
  );
  return { dir, caCert: p("ca.crt"), cert: p("server.crt"), key: p("server.key") };
}
