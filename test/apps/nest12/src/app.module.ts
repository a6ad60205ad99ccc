import { Module } from '@nestjs/common';
import { SessionModule } from 'nest-sessions';
import { AppController } from './app.controller';
import { AppService } from './app.service';
import { CounterController } from './counter.controller';

@Module({
  imports: [SessionModule.forRoot()],
  controllers: [AppController, CounterController],
  providers: [AppService],
})
export class AppModule {}
