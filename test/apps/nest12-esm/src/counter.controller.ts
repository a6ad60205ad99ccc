import { Controller, Get } from '@nestjs/common';
import { Session } from 'nest-sessions';

@Controller()
export class CounterController {
  @Get('count')
  count(@Session() session: Session) {
    const visits = (session.get('visits') ?? 0) + 1;
    session.set('visits', visits);
    return { visits };
  }
}
