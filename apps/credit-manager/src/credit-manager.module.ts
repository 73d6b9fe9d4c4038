import { Module, type DynamicModule } from '@nestjs/common';
import { MeshCoreModule, type MeshCore } from '@mesh/runtime';
import { CreditManagerController } from './credit-manager.controller';
import { CreditManagerEngine } from './credit-manager.engine';

@Module({})
export class CreditManagerModule {
  static forRoot(core: MeshCore): DynamicModule {
    return {
      module: CreditManagerModule,
      imports: [MeshCoreModule.forRoot(core)],
      controllers: [CreditManagerController],
      providers: [CreditManagerEngine],
    };
  }
}
