import { startService } from '@mesh/messaging';
import { NatsServerProcess } from '@mesh/testing';
import { ScalerService } from './src/main';
async function main() {
  const server = await NatsServerProcess.start();
  for (let i = 0; i < 8; i++) {
    const s = await startService(ScalerService, { NATS_URL: server.url, LOG_LEVEL: 'error' });
    await new Promise((r) => setTimeout(r, 200 + i * 150));
    const t = Date.now();
    const timer = setTimeout(() => { console.log(`run ${i}: app.close still hanging after 5 s`); }, 5000);
    await s.app.close();
    console.log(`run ${i}: app.close ${Date.now() - t} ms`);
    clearTimeout(timer);
    await s.store.close(); await s.nc.drain();
  }
  await server.dispose();
  process.exit(0);
}
main();
